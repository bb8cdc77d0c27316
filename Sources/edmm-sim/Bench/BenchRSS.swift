import EDMMSimHost

/// The daemon at scale: `enclaves` enclaves of `enclaveSize` bytes of ELRANGE registered by
/// `clients` processes, each of which also runs the server workload on one of its enclaves, so
/// that every client is active while edmmd's memory is read; and a fresh one-page ALLOCATE's
/// round trip with `fewEnclaves` registered against the same with all of them.
struct BenchRSS: Codable {
    var enclaves: Int
    var enclaveSizeBytes: UInt64
    var activeClients: Int
    /// Read from /proc/<edmmd>/status once every client finished its workload.
    var daemon: BenchDaemon.Memory
    var allocate: ScaleLatency
    var problems: [String]

    /// A probe's fresh ALLOCATE, one at a time: first with `fewEnclaves` registered, then with
    /// all of them (the fleet registered and idle), then with few again once the fleet left;
    /// `few` pools the first and last samples, so that drift over the run falls on both sides.
    struct ScaleLatency: Codable {
        var fewEnclaves: Int
        var rounds: Int
        var few: LatencySummary
        var all: LatencySummary
    }

    static let fewEnclaves = 10

    static func measure(
        enclaves: Int, enclaveSize: UInt64, clients: Int, rounds: Int, _ settings: BenchSettings
    ) async throws -> BenchRSS {
        let config = settings.daemonConfig(
            .full,
            extra: """
                [limits]
                max_connections = \(clients + 64)
                max_enclaves_per_connection = \(enclaves / clients + fewEnclaves + 1)
                [simulator]
                max_enclaves = \(max(4096, enclaves + 64))

                """)
        let daemon = try BenchDaemon(config: config, epcBytes: settings.epcBytes)
        defer { daemon.stop() }
        let probe = try await DaemonProbe(socketPath: daemon.socketPath, window: 1)
        var probeEnclaves: [IdleEnclave] = []
        for i in 1..<fewEnclaves {
            probeEnclaves.append(try await IdleEnclave(on: probe.host, blueprint: EnclaveBlueprint(label: "probe-\(i)", size: 1 << 30)))
        }
        var few = LatencyHistogram()
        var all = LatencyHistogram()
        try await probe.sampleFreshAllocations(rounds, into: &few)

        let fleet = try BenchFleet(count: clients) { index in
            // Client i registers its share of the idle enclaves besides its active one.
            let remaining = enclaves - fewEnclaves - clients
            let idle = remaining / clients + (index < remaining % clients ? 1 : 0)
            return [
                "--socket", daemon.socketPath, "--approach", BenchApproach.full.rawValue, "--workload", WorkloadKind.server.rawValue,
                "--seed", "\(settings.seed &+ UInt64(index))", "--batches", "\(settings.batches)",
                "--working-set", "\(settings.workingSet)", "--enclave-size", "\(enclaveSize)", "--idle-enclaves", "\(idle)",
                "--label", "rss-\(index)", "--no-check",
            ]
        }
        defer { fleet.kill() }
        guard fleet.await(.ready, timeout: 600) != nil else {
            throw BenchDaemon.Failure(description: fleet.failures.joined(separator: "; "))
        }
        try await probe.sampleFreshAllocations(rounds, into: &all)
        fleet.broadcast("go")
        guard fleet.await(.done, timeout: 600) != nil else {
            throw BenchDaemon.Failure(description: fleet.failures.joined(separator: "; "))
        }
        let memory = daemon.memory()
        fleet.broadcast("check")
        _ = fleet.await(.checked, timeout: 60)
        fleet.broadcast("exit")
        fleet.reap(timeout: 120)
        try await probe.sampleFreshAllocations(rounds, into: &few)
        for enclave in probeEnclaves { await enclave.unregister() }
        return BenchRSS(
            enclaves: enclaves, enclaveSizeBytes: enclaveSize, activeClients: clients, daemon: memory,
            allocate: ScaleLatency(fewEnclaves: fewEnclaves, rounds: rounds, few: LatencySummary(few), all: LatencySummary(all)),
            problems: fleet.failures)
    }
}
