import Dispatch
import EDMMCore

extension MonotonicInstant {
    /// Now, on the clock Dispatch timers use (CLOCK_MONOTONIC on Linux).
    static var now: MonotonicInstant { MonotonicInstant(nanoseconds: DispatchTime.now().uptimeNanoseconds) }

    /// The same instant as a Dispatch deadline.
    var dispatchTime: DispatchTime { DispatchTime(uptimeNanoseconds: nanoseconds) }
}

extension Duration {
    /// Whole microseconds, clamped to `0...UInt64.max`.
    var microsecondsClamped: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (fromSeconds, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000)
        let (total, carry) = fromSeconds.addingReportingOverflow(UInt64(max(0, attoseconds) / 1_000_000_000_000))
        return overflow || carry ? .max : total
    }
}
