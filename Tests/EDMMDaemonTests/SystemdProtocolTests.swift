import CEDMMShims
import EDMMDaemon
import Glibc
import Testing

/// The libsystemd side of edmmd against a fake NOTIFY_SOCKET: what each notification carries,
/// how often the watchdog is pinged, and how descriptors reach the FD store. Serialized: the
/// environment (NOTIFY_SOCKET, WATCHDOG_*) is process-wide.
@Suite(.serialized) struct SystemdProtocolTests {
    /// Runs `body` with NOTIFY_SOCKET (and `environment`) pointing at a fresh fake manager.
    private func withManager(_ environment: [String: String] = [:], _ body: (FakeServiceManager) throws -> Void) throws {
        var template = Array("/tmp/edmmd-sd-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestClient.Failure.system("mkdtemp", errno) }
        let directory = String(cString: made)
        let manager = try FakeServiceManager(directory: directory)
        setenv("NOTIFY_SOCKET", manager.path, 1)
        for (name, value) in environment { setenv(name, value, 1) }
        defer {
            unsetenv("NOTIFY_SOCKET")
            for name in environment.keys { unsetenv(name) }
            manager.stop()
            rmdir(directory)
        }
        try body(manager)
    }

    @Test func readyStatusReloadingAndStoppingReachTheManager() throws {
        try withManager { manager in
            let notifier = SystemdNotifier()
            notifier.ready(status: "serving; 0 enclaves")
            notifier.status("1 enclaves")
            notifier.reloading()
            notifier.stopping()
            #expect(manager.waitFor { $0.hasPrefix("STOPPING=1") } != nil)
            let messages = manager.messages
            #expect(messages.first == "READY=1\nSTATUS=serving; 0 enclaves")
            #expect(messages.contains("STATUS=1 enclaves"))
            let reloading = try #require(messages.first { $0.hasPrefix("RELOADING=1") })
            let usec = FakeServiceManager.fields(reloading)["MONOTONIC_USEC"].flatMap { UInt64($0) }
            #expect((usec ?? 0) > 0)
        }
    }

    @Test func aNewlineInAStatusCannotAddAnAssignment() throws {
        try withManager { manager in
            SystemdNotifier().status("label\nREADY=1")
            let message = try #require(manager.waitFor { $0.hasPrefix("STATUS=") })
            #expect(message == "STATUS=label READY=1")
        }
    }

    @Test func theWatchdogIsPingedAtMostEveryHalfTimeout() throws {
        try withManager(["WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "\(getpid())"]) { manager in
            let notifier = SystemdNotifier()
            #expect(notifier.watchdogInterval == .seconds(10))
            for _ in 0..<100 { notifier.watchdogTick() }
            notifier.status("marker")
            #expect(manager.waitFor { $0 == "STATUS=marker" } != nil)
            #expect(manager.messages.filter { $0 == "WATCHDOG=1" }.count == 1)
        }
    }

    @Test func aWatchdogMeantForAnotherProcessOrSwitchedOffIsNotPinged() throws {
        try withManager(["WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"]) { _ in
            #expect(SystemdNotifier().watchdogInterval == nil)
        }
        try withManager(["WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "\(getpid())"]) { _ in
            #expect(SystemdNotifier(pingWatchdog: false).watchdogInterval == nil)
        }
    }

    @Test func theFDStoreReceivesTheDescriptorUnderItsNameAndForgetsItOnRemove() throws {
        try withManager { manager in
            let (readEnd, writeEnd) = try makePipe()
            defer {
                close(readEnd)
                close(writeEnd)
            }
            let store = SystemdDescriptorStore()
            #expect(store.store(readEnd, name: "enclave-9"))
            #expect(eventually { manager.storedNames == ["enclave-9"] })
            let copy = try #require(manager.storedCopies().first)
            defer { close(copy.fd) }
            #expect(sameFile(copy.fd, readEnd))
            store.remove(name: "enclave-9")
            #expect(eventually { manager.storedNames.isEmpty })
            #expect(manager.messages.last == "FDSTOREREMOVE=1\nFDNAME=enclave-9")
        }
    }

    @Test func withoutAServiceManagerNothingIsSentAndNothingFails() {
        unsetenv("NOTIFY_SOCKET")
        #expect(!SystemdNotifier.isAvailable)
        let notifier = SystemdNotifier()
        notifier.ready(status: "serving")
        notifier.watchdogTick()
        #expect(notifier.watchdogInterval == nil)
        #expect(!SystemdDescriptorStore().store(0, name: "x"))
    }
}
