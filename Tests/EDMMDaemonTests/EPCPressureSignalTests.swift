import EDMMCore
import EDMMProtocol
import Glibc
import Testing

@testable import EDMMDaemon

/// The device's reclaim as the pressure signal: ksgxd's CPU time on Linux (read from a /proc tree
/// built here), EWB in the simulated EPC.
@Suite struct EPCPressureSignalTests {
    /// A /proc with one thread: `comm`, `stat` (with `ppid`) and, unless nil, `schedstat`.
    private func procTree(comm: String, ppid: Int, schedstat: String?, utime: Int = 5, stime: Int = 7) throws -> String {
        var template = Array("/tmp/edmmd-proc-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestClient.Failure.system("mkdtemp", errno) }
        let root = String(cString: made)
        let thread = "\(root)/412"
        mkdir(thread, 0o755)
        try write("\(comm)\n", to: "\(thread)/comm")
        // The name may hold spaces and parentheses: the fields start after the last ')'.
        try write("412 (\(comm)) S \(ppid) 0 0 0 -1 2129984 0 0 0 0 \(utime) \(stime) 0 0 20 0 1 0 9 0 0\n", to: "\(thread)/stat")
        if let schedstat { try write(schedstat, to: "\(thread)/schedstat") }
        return root
    }

    private func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw TestClient.Failure.system("open \(path)", errno) }
        defer { close(fd) }
        _ = text.utf8CString.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
    }

    @Test func ksgxdRunningBetweenTwoSamplesIsReclaimAndIdleIsNot() throws {
        let root = try procTree(comm: "ksgxd", ppid: 2, schedstat: "1000 0 0\n")
        let activity = KsgxdActivity(procDirectory: root)
        #expect(activity.source == .schedstat("\(root)/412/schedstat"))
        #expect(activity.sample() == false)  // compared with the figure at construction
        try write("250000 0 3\n", to: "\(root)/412/schedstat")
        #expect(activity.sample() == true)
        #expect(activity.sample() == false)
    }

    @Test func withoutSchedstatKsgxdsTicksInStatAreTheMeasure() throws {
        let root = try procTree(comm: "ksgxd", ppid: 2, schedstat: nil)
        let activity = KsgxdActivity(procDirectory: root)
        #expect(activity.source == .stat("\(root)/412/stat"))
        #expect(KsgxdActivity.cpuTime(.stat("\(root)/412/stat")) == 12)
        _ = activity.sample()
        try write("412 (ksgxd) S 2 0 0 0 -1 2129984 0 0 0 0 5 9 0 0 20 0 1 0 9 0 0\n", to: "\(root)/412/stat")
        #expect(activity.sample() == true)
    }

    @Test func aProcessThatNamesItselfKsgxdCannotFeignPressure() throws {
        // Any process can take the name (PR_SET_NAME); only kernel threads are kthreadd's children.
        let root = try procTree(comm: "ksgxd", ppid: 4242, schedstat: "1000 0 0\n")
        let activity = KsgxdActivity(procDirectory: root)
        #expect(activity.source == nil)
        #expect(activity.sample() == nil)
    }

    @Test func aCommandNameWithParenthesesDoesNotShiftTheStatFields() {
        let fields = KsgxdActivity.statFields("77 (a) b) (c) R 2 0 0")
        #expect(fields?.prefix(2) == ["R", "2"])
    }

    @Test func aSimulatedEPCThatEvictsReportsReclaimAndCountsEveryPage() async throws {
        try await withDaemon({
            $0.simulator.epcBytes = 1 << 20  // 256 pages
            $0.quota.machineBytes = 4 << 20  // beyond the EPC: the simulated EPC evicts
            $0.pressure.checkIntervalMillis = 10
        }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client), base: 1 << 32)
            let (handle, _) = try client.register(enclave, label: "evicts")
            #expect(try client.status().counter("epc_device_reclaiming") == 0)
            // 300 pages in a 256-page EPC: the simulated EPC writes pages back to make room.
            let grant = try client.allocate(AllocateRequest(enclave: handle, offset: 0, length: 300 * 4096))
            enclave.acceptFresh(grant.fresh)
            #expect(try client.status().counter("sim_ewb") ?? 0 > 0)
            var seen = false
            for _ in 0..<200 where !seen {
                seen = try client.status().counter("epc_device_reclaiming") == 1
                if !seen { usleep(5_000) }
            }
            #expect(seen)
            let snapshot = daemon.daemon.snapshot()
            #expect(snapshot.epc.measure == .device)
            #expect(snapshot.epc.usedPages >= 256 - 8)
        }
    }
}
