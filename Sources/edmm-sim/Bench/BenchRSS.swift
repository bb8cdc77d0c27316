/// The daemon's memory with many large enclaves registered: `enclaves` enclaves of `enclaveSize`
/// bytes of ELRANGE, registered by `clients` processes that each also run the server workload on
/// one of theirs, so that every client is active while the figure is read.
struct BenchRSS: Codable {
    var enclaves: Int
    var enclaveSizeBytes: UInt64
    var activeClients: Int
    /// Read from /proc/<edmmd>/status once every client finished its workload.
    var daemon: BenchDaemon.Memory
    var problems: [String]

    static func measure(enclaves: Int, enclaveSize: UInt64, clients: Int, _ settings: BenchSettings) throws -> BenchRSS {
        let config = settings.daemonConfig(
            .full,
            extra: """
                [limits]
                max_connections = \(enclaves + clients + 64)
                [simulator]
                max_enclaves = \(max(4096, enclaves + 64))

                """)
        let daemon = try BenchDaemon(config: config, epcBytes: settings.epcBytes)
        defer { daemon.stop() }
        let fleet = try BenchFleet(count: clients) { index in
            // Client i registers its share of the idle enclaves besides its active one.
            let idle = (enclaves - clients) / clients + (index < (enclaves - clients) % clients ? 1 : 0)
            return [
                "--socket", daemon.socketPath, "--approach", BenchApproach.full.rawValue, "--workload", WorkloadKind.server.rawValue,
                "--seed", "\(settings.seed &+ UInt64(index))", "--batches", "\(settings.batches)",
                "--working-set", "\(settings.workingSet)", "--enclave-size", "\(enclaveSize)", "--idle-enclaves", "\(idle)",
                "--label", "rss-\(index)", "--no-check",
            ]
        }
        defer { fleet.kill() }
        guard fleet.await(.ready, timeout: 300) != nil else {
            throw BenchDaemon.Failure(description: fleet.failures.joined(separator: "; "))
        }
        fleet.broadcast("go")
        guard fleet.await(.done, timeout: 600) != nil else {
            throw BenchDaemon.Failure(description: fleet.failures.joined(separator: "; "))
        }
        let memory = daemon.memory()
        fleet.broadcast("check")
        _ = fleet.await(.checked, timeout: 60)
        fleet.broadcast("exit")
        fleet.reap(timeout: 60)
        return BenchRSS(
            enclaves: enclaves, enclaveSizeBytes: enclaveSize, activeClients: clients, daemon: memory, problems: fleet.failures)
    }
}
