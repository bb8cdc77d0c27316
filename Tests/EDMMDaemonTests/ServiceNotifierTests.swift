import EDMMDaemon
import Synchronization
import Testing

/// The service-manager seam: READY when serving, watchdog ticks, RELOADING/READY around a reload,
/// STOPPING at shutdown.
@Suite struct ServiceNotifierTests {
    final class Recorder: ServiceNotifier {
        let events = Mutex<[String]>([])
        func ready(status: String) { events.withLock { $0.append("ready") } }
        func status(_ text: String) { events.withLock { $0.append("status") } }
        func reloading() { events.withLock { $0.append("reloading") } }
        func stopping() { events.withLock { $0.append("stopping") } }
        func watchdogTick() { events.withLock { $0.append("watchdog") } }
        var all: [String] { events.withLock { $0 } }
    }

    @Test func theNotifierHearsEveryLifecycleStep() async throws {
        let recorder = Recorder()
        let daemon = try TestDaemon({ $0.pressure.checkIntervalMillis = 5 }, notifier: recorder)
        #expect(recorder.all.first == "ready")
        #expect(eventually { recorder.all.contains("watchdog") })
        let client = try daemon.connect()
        try daemon.writeConfig("[batch]\nwindow_us = 200\n")
        _ = try client.expect(.reload)
        let afterReload = recorder.all.filter { $0 != "watchdog" && $0 != "status" }
        #expect(afterReload.suffix(2) == ["reloading", "ready"])
        await daemon.stop()
        #expect(recorder.all.last == "stopping")
    }

    @Test func theCoreQueueTicksAgainAfterAnInjectedStall() async throws {
        let recorder = Recorder()
        let faults = FaultInjection()
        try await withDaemon({ $0.pressure.checkIntervalMillis = 5 }, faultInjection: faults, notifier: recorder) { daemon in
            faults.stallCoreQueueOnce(for: .milliseconds(100))
            #expect(eventually { faults.stallsPerformed == 1 })
            let ticks = recorder.all.filter { $0 == "watchdog" }.count
            #expect(eventually { recorder.all.filter { $0 == "watchdog" }.count > ticks })
            let client = try daemon.connect()
            #expect(try client.status().mode == .simulated)
        }
    }
}
