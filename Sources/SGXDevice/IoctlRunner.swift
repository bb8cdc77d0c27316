import EDMMCore

#if canImport(Glibc)
    import Glibc
#endif

/// Runs one logical SGX2 operation over `[offset, offset + length)` on any `EnclaveDevice`,
/// retrying EBUSY, EAGAIN and EINTR by resuming after the pages already done: offset += count,
/// length -= count, count = result = 0 (the loop of the kernel selftests, Gramine and the Intel
/// SDK), with the backoff and bounds of a `RetryPolicy`.
///
/// The runner blocks its thread while it sleeps; it is meant to run on the serial queue that
/// owns the enclave's device. It holds no state of its own between calls.
public struct IoctlRunner: Sendable {
    public typealias Sleep = @Sendable (Duration) -> Void

    public let policy: RetryPolicy
    private let sleep: Sleep

    /// `sleep` is called with each backoff pause; tests inject one that only records.
    public init(policy: RetryPolicy = .default, sleep: @escaping Sleep = IoctlRunner.threadSleep) {
        self.policy = policy
        self.sleep = sleep
    }

    public func run(_ ioctl: EnclaveIoctl, pages: PageRange, on device: some EnclaveDevice) -> IoctlRunResult {
        run(ioctl, offset: pages.byteOffset, length: pages.byteLength, on: device)
    }

    public func run(_ ioctl: EnclaveIoctl, offset: UInt64, length: UInt64, on device: some EnclaveDevice)
        -> IoctlRunResult
    {
        var outcome = IoctlRunResult(
            stop: .completed, errno: 0, bytesDone: 0, result: nil, ioctlCalls: 0, retries: RetryCounts(),
            totalBackoff: .zero)
        var remaining = length
        var callsWithoutProgress = 0
        var pause = policy.initialBackoff
        while true {
            let call = device.perform(ioctl, offset: offset &+ outcome.bytesDone, length: remaining)
            outcome.ioctlCalls += 1
            outcome.errno = call.errno
            outcome.result = call.result
            if call.errno == 0 {
                // The kernel reports the whole range on success.
                guard call.count == remaining else {
                    outcome.errno = EPROTO
                    return stopped(outcome, .invalidCount(call.count))
                }
                outcome.bytesDone += remaining
                return stopped(outcome, .completed)
            }
            // `count` never includes the failing page.
            guard call.count == 0 || (call.count < remaining && call.count % Page.size == 0) else {
                return stopped(outcome, .invalidCount(call.count))
            }
            outcome.bytesDone += call.count
            remaining -= call.count
            guard RetryCounts.isRetried(call.errno) else { return stopped(outcome, .failed) }

            if call.count > 0 {
                callsWithoutProgress = 0
                pause = policy.initialBackoff
            } else {
                callsWithoutProgress += 1
            }
            guard callsWithoutProgress <= policy.maxRetriesWithoutProgress else {
                return stopped(outcome, .retriesExhausted)
            }
            guard outcome.totalBackoff + pause <= policy.maxTotalWait else {
                return stopped(outcome, .waitExhausted)
            }
            outcome.retries.record(call.errno)
            if pause > .zero { sleep(pause) }
            outcome.totalBackoff += pause
            pause = policy.backoff(after: pause)
        }
    }

    private func stopped(_ outcome: IoctlRunResult, _ stop: IoctlRunResult.Stop) -> IoctlRunResult {
        var outcome = outcome
        outcome.stop = stop
        return outcome
    }

    /// Pauses the calling thread. nanosleep(2) overshoots by the timer slack (about 70 µs for a
    /// 1 µs request, measured), so pauses below 100 µs yield the CPU in a loop until the deadline
    /// instead, which also lets the kernel's reclaimer (the usual cause of EAGAIN) run.
    public static let threadSleep: Sleep = { duration in
        if duration < .microseconds(100) {
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: duration)
            while clock.now < deadline { sched_yield() }
            return
        }
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
