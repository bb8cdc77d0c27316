import EDMMCore
import Testing

/// A clock the test moves by hand.
struct MockClock {
    var now = MonotonicInstant(nanoseconds: 1_000_000)
    mutating func advance(by duration: Duration) { now = now + duration }
}

@Suite struct FlushPolicyBehaviour {
    @Test func theFirstQueuedRequestArmsTheWindowDeadline() {
        let clock = MockClock()
        var policy = FlushPolicy()
        #expect(policy.requestQueued(pages: 1, now: clock.now) == .armTimer(clock.now + .microseconds(500)))
        #expect(policy.isCollecting)
        #expect(policy.requestQueued(pages: 1, now: clock.now) == FlushPolicy.Action.none)
    }

    @Test func theWindowFlushesWhenTheTimerFiresAtTheDeadline() {
        var clock = MockClock()
        var policy = FlushPolicy()
        _ = policy.requestQueued(pages: 1, now: clock.now)
        clock.advance(by: .microseconds(200))
        _ = policy.requestQueued(pages: 1, now: clock.now)
        clock.advance(by: .microseconds(300))
        #expect(policy.timerFired(now: clock.now) == .flush(.windowElapsed))
        #expect(!policy.isCollecting)
    }

    @Test func aTimerFiringEarlyIsRearmedForTheSameDeadline() {
        var clock = MockClock()
        var policy = FlushPolicy()
        let deadline = clock.now + .microseconds(500)
        _ = policy.requestQueued(pages: 1, now: clock.now)
        clock.advance(by: .microseconds(100))
        #expect(policy.timerFired(now: clock.now) == .armTimer(deadline))
    }

    @Test func reachingThePageLimitFlushesAtOnceAndAStaleTimerThenDoesNothing() {
        var clock = MockClock()
        var policy = FlushPolicy(FlushPolicy.Configuration(maximumPages: 100))
        _ = policy.requestQueued(pages: 60, now: clock.now)
        #expect(policy.requestQueued(pages: 40, now: clock.now) == .flush(.pageLimit))
        clock.advance(by: .milliseconds(1))
        #expect(policy.timerFired(now: clock.now) == FlushPolicy.Action.none)
    }

    @Test func aSingleRequestAboveThePageLimitFlushesAtOnce() {
        var policy = FlushPolicy(FlushPolicy.Configuration(maximumPages: 100))
        #expect(policy.requestQueued(pages: 500, now: MockClock().now) == .flush(.pageLimit))
    }

    @Test func aRequestAfterAFlushOpensANewWindow() {
        var clock = MockClock()
        var policy = FlushPolicy()
        _ = policy.requestQueued(pages: 1, now: clock.now)
        _ = policy.sync()
        clock.advance(by: .microseconds(50))
        #expect(policy.requestQueued(pages: 1, now: clock.now) == .armTimer(clock.now + .microseconds(500)))
    }

    @Test func aFlushTheDaemonStartsClosesTheWindowSoTheNextRequestArmsATimer() {
        var clock = MockClock()
        var policy = FlushPolicy()
        _ = policy.requestQueued(pages: 1, now: clock.now)
        policy.flushed()
        #expect(!policy.isCollecting)
        clock.advance(by: .microseconds(50))
        #expect(policy.requestQueued(pages: 1, now: clock.now) == .armTimer(clock.now + .microseconds(500)))
    }

    @Test func syncFlushesAtOnceEvenWithNothingQueued() {
        var policy = FlushPolicy()
        #expect(policy.sync() == .flush(.sync))
        _ = policy.requestQueued(pages: 1, now: MockClock().now)
        #expect(policy.sync() == .flush(.sync))
        #expect(!policy.isCollecting)
    }

    @Test func shutdownFlushesAndEveryLaterRequestFlushesAtOnce() {
        var policy = FlushPolicy()
        _ = policy.requestQueued(pages: 1, now: MockClock().now)
        #expect(policy.shutdown() == .flush(.shutdown))
        #expect(policy.requestQueued(pages: 1, now: MockClock().now) == .flush(.shutdown))
    }

    @Test func withoutBatchingEveryRequestFlushesAloneAtOnce() {
        var policy = FlushPolicy(FlushPolicy.Configuration(batching: false))
        #expect(policy.requestQueued(pages: 1, now: MockClock().now) == .flush(.unbatched))
        #expect(policy.requestQueued(pages: 1, now: MockClock().now) == .flush(.unbatched))
        #expect(!policy.isCollecting)
    }

    @Test func theWindowLengthIsConfigurable() {
        let clock = MockClock()
        var policy = FlushPolicy(FlushPolicy.Configuration(window: .milliseconds(2)))
        #expect(policy.requestQueued(pages: 1, now: clock.now) == .armTimer(clock.now + .milliseconds(2)))
    }
}
