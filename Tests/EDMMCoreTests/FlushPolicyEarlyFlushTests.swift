import EDMMCore
import Testing

/// A flush the window did not start closes the window, so the next request arms the timer again.
@Suite struct FlushPolicyEarlyFlushTests {
    @Test func aRequestAfterAnEarlyFlushOpensANewWindowAndArmsTheTimer() {
        var policy = FlushPolicy(.init(window: .milliseconds(1)))
        let start = MonotonicInstant(nanoseconds: 1_000_000)
        #expect(policy.requestQueued(pages: 1, now: start) == .armTimer(start + .milliseconds(1)))
        policy.flushed()
        #expect(!policy.isCollecting)
        let later = start + .microseconds(100)
        #expect(policy.requestQueued(pages: 1, now: later) == .armTimer(later + .milliseconds(1)))
    }

    @Test func anEarlyFlushDuringShutdownKeepsFlushingEveryRequestAtOnce() {
        var policy = FlushPolicy()
        _ = policy.shutdown()
        policy.flushed()
        #expect(policy.requestQueued(pages: 1, now: MonotonicInstant(nanoseconds: 1)) == .flush(.shutdown))
    }
}
