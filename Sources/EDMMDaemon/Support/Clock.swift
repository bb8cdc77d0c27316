import Dispatch
import EDMMCore

extension MonotonicInstant {
    /// Now, on the clock Dispatch timers use (CLOCK_MONOTONIC on Linux).
    static var now: MonotonicInstant { MonotonicInstant(nanoseconds: DispatchTime.now().uptimeNanoseconds) }

    /// The same instant as a Dispatch deadline.
    var dispatchTime: DispatchTime { DispatchTime(uptimeNanoseconds: nanoseconds) }
}
