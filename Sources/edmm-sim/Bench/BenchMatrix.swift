import SGXSimulator

/// What every row of one `edmm-sim bench` run shares.
struct BenchSettings {
    var batches: Int
    var workingSet: UInt64
    var epcBytes: UInt64
    var seed: UInt64
    /// ELRANGE of each client's enclave.
    var enclaveSize: UInt64 = 1 << 27
    /// `[batch] window_us` of every edmmd (nil: edmmd's default).
    var batchWindowMicros: UInt64?

    /// The edmmd.toml of an approach (pool threshold, quotas and limits at their defaults).
    func daemonConfig(_ approach: BenchApproach, extra: String = "") -> String {
        approach.daemonConfig(batchWindowMicros: batchWindowMicros) + extra
    }
}

/// Runs one row: a fresh edmmd (or, for per-request, a fresh simulated machine of the same EPC
/// size) and `clients` processes, client i replaying `workload` from seed + i.
func runBenchRow(_ approach: BenchApproach, _ workload: WorkloadKind, clients: Int, _ settings: BenchSettings) throws -> BenchRow {
    var daemon: BenchDaemon?
    var machine: SimulatedMachine?
    defer { daemon?.stop() }
    var connection: [String]
    var passing: [Int32] = []
    if approach.usesDaemon {
        let started = try BenchDaemon(config: settings.daemonConfig(approach), epcBytes: settings.epcBytes)
        daemon = started
        connection = ["--socket", started.socketPath]
    } else if approach == .perRequest {
        let created = try SimulatedMachine.create(.init(epcPages: settings.epcBytes / 4096, enclaveCapacity: 4096))
        machine = created
        passing = [created.fd]
        connection = ["--machine-fd", "3"]
    } else {
        connection = []
    }
    let fleet = try BenchFleet(count: clients, passing: passing) { index in
        connection + [
            "--approach", approach.rawValue, "--workload", workload.rawValue, "--seed", "\(settings.seed &+ UInt64(index))",
            "--batches", "\(settings.batches)", "--working-set", "\(settings.workingSet)", "--enclave-size", "\(settings.enclaveSize)",
            "--label", "\(workload.rawValue)-\(index)",
        ]
    }
    defer { fleet.kill() }
    guard fleet.await(.ready, timeout: 180) != nil else { throw BenchDaemon.Failure(description: fleet.failures.joined(separator: "; ")) }
    let cpuBefore = daemon?.cpuSeconds()
    fleet.broadcast("go")
    guard let done = fleet.await(.done, timeout: 900) else {
        throw BenchDaemon.Failure(description: fleet.failures.joined(separator: "; "))
    }
    let daemonCPU = cpuBefore.map { (daemon?.cpuSeconds() ?? 0) - $0 }
    fleet.broadcast("check")
    let checked = fleet.await(.checked, timeout: 300)
    fleet.broadcast("exit")
    fleet.reap(timeout: 30)
    _ = machine
    let matches = checked?.allSatisfy { $0.matches == true } ?? false
    let problems = fleet.failures + (checked ?? []).compactMap { $0.message.flatMap { $0.isEmpty ? nil : $0 } }
    return BenchRow(
        approach: approach, workload: workload, clients: clients, reports: done.compactMap(\.report), daemonCPU: daemonCPU,
        matches: matches, problems: problems)
}
