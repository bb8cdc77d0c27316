import Dispatch
import EDMMDaemon
import Glibc
import Logging

/// Faults for the real-systemd test (scripts/test-systemd.sh), switched on only by the
/// environment variable EDMMD_TEST_FAULTS, which a test sets in a unit drop-in. Nothing on the
/// wire can turn them on; without the variable there are none.
///
/// `stall-core-on-sigusr2`: SIGUSR2 blocks the daemon's core queue for an hour, which is what a
/// hung daemon looks like to the watchdog (the WATCHDOG=1 pings come from that queue).
struct TestFaults {
    static let variable = "EDMMD_TEST_FAULTS"

    let injection = FaultInjection()
    private let signalSource: any DispatchSourceSignal

    struct UnknownFault: Error, CustomStringConvertible {
        var value: String
        var description: String { "\(TestFaults.variable)=\(value): the only test fault is stall-core-on-sigusr2" }
    }

    static func fromEnvironment(logger: Logger) throws(UnknownFault) -> TestFaults? {
        guard let raw = getenv(variable) else { return nil }
        let value = String(cString: raw)
        guard value == "stall-core-on-sigusr2" else { throw UnknownFault(value: value) }
        logger.warning("test fault injection is on (\(variable)=\(value)): SIGUSR2 stalls the core queue")
        return TestFaults()
    }

    private init() {
        signal(SIGUSR2, SIG_IGN)
        signalSource = DispatchSource.makeSignalSource(signal: SIGUSR2, queue: .global())
        let injection = self.injection
        signalSource.setEventHandler { @Sendable in injection.stallCoreQueueOnce(for: .seconds(3600)) }
        signalSource.activate()
    }
}
