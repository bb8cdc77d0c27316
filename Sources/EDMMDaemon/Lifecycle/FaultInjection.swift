import Synchronization

/// Faults that tests can switch on to exercise failure paths (for example a core queue that stops
/// answering, for the watchdog). A daemon gets one only through `DaemonOptions`; nothing on the
/// wire can create or change it, and the default daemon has none.
public final class FaultInjection: Sendable {
    private let coreStall = Mutex<Duration?>(nil)
    private let stalls = Mutex(0)

    public init() {}

    /// Stalls that happened so far.
    public var stallsPerformed: Int { stalls.withLock { $0 } }

    /// Makes the next supervisor tick block the core queue for `duration` (what a hung daemon looks
    /// like to a watchdog).
    public func stallCoreQueueOnce(for duration: Duration) {
        coreStall.withLock { $0 = duration }
    }

    /// The pending stall, consumed (and counted).
    func takeCoreStall() -> Duration? {
        let stall = coreStall.withLock { stall in
            defer { stall = nil }
            return stall
        }
        if stall != nil { stalls.withLock { $0 += 1 } }
        return stall
    }
}
