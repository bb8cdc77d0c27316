import Synchronization

/// Faults that tests can switch on to exercise failure paths (for example a core queue that stops
/// answering, for the watchdog). A daemon gets one only through `DaemonOptions`; nothing on the
/// wire can create or change it, and the default daemon has none.
public final class FaultInjection: Sendable {
    private let coreStall = Mutex<Duration?>(nil)

    public init() {}

    /// Makes the next supervisor tick block the core queue for `duration` (what a hung daemon looks
    /// like to a watchdog).
    public func stallCoreQueueOnce(for duration: Duration) {
        coreStall.withLock { $0 = duration }
    }

    /// The pending stall, consumed.
    func takeCoreStall() -> Duration? {
        coreStall.withLock { stall in
            defer { stall = nil }
            return stall
        }
    }
}
