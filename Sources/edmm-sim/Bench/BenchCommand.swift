import ArgumentParser
import EDMMCore
import EDMMSystem
import Glibc

/// `edmm-sim bench`: edmmd against today's per-request approach, on the same simulated EPC and
/// workload seeds, with the physical reference measured in the same run (docs/benchmarks.md).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare edmmd with today's per-request EDMM, and check the performance targets.",
        discussion: """
            Runs every workload (server, startup, gc, fragmented) with 1, 8 and 64 client \
            processes under five approaches, each on a fresh simulated EPC of the same size, \
            client i replaying its workload from seed + i for --batches batches:

              per-request      in-process, no daemon: each free is an OCALL for MODIFY_TYPES,
                               an EACCEPT per page and an OCALL for REMOVE_PAGES; each
                               permission change an OCALL for RESTRICT_PERMISSIONS and an
                               EACCEPT per page (Gramine's loops)
              static           SGX1-style: the workload's peak heap EADDed and EEXTENDed
                               at load (load_cycles), no EDMM afterwards
              edmmd-unbatched  a real edmmd with batching, lazy free and growth off
              edmmd-batched    batching on
              edmmd-full       batching, lazy free and growth

            Then, in the same run: a raw SOCK_SEQPACKET ping-pong and a pipelined exchange \
            between two processes, edmmd's ALLOCATE latency and pipelined rate against them, \
            edmmd's memory with 10,000 registered 1 TiB enclaves and 64 active clients and its \
            ALLOCATE latency with 10 and with 10,000 registered, and the \
            core's cost at 10 and 100,000 ranges. It prints each target and whether it holds.

            ioctls, exits and cycles are modelled (the simulator's counts and cost table); \
            latency, throughput, CPU time and RSS are measured on this machine. Use a release \
            build (swift build -c release); edmmd must sit beside edmm-sim.

            EXIT STATUS
              0   every row completed, every EPCM matched, every target held
              1   a row failed or an EPCM did not match
              2   completed, but a target was missed
            """)

    @Flag(help: "A reduced run (a few minutes on 2 cores): server, gc and startup with 8 clients, fewer batches and rounds.")
    var quick = false

    @Flag(help: "Print one JSON object instead of tables.")
    var json = false

    @Option(help: "Seed of the workloads (client i uses seed + i).")
    var seed: UInt64 = 1

    @Option(help: "Workload batches per client and row (default 400, --quick 150).")
    var batches: Int?

    @Option(help: "Working set of each client's enclave, in pages.")
    var workingSet: UInt64 = 512

    @Option(help: "Size of the simulated EPC, in MiB (large enough that no row is refused for lack of EPC).")
    var epcMib: UInt64 = 1024

    @Option(help: "edmmd's batch window, [batch] window_us, in microseconds (default: edmmd's, 500).")
    var batchWindowUs: UInt64?

    @Option(help: "Enclaves of 1 TiB registered in the rss phase (64 of them active).")
    var scaleEnclaves = 10_000

    @Option(help: "Comma-separated workloads (default: all; --quick: server,gc,startup).")
    var workloads: String?

    @Option(help: "Comma-separated client counts (default: 1,8,64; --quick: 8).")
    var clients: String?

    @Option(help: "Comma-separated approaches (default: all five).")
    var approaches: String?

    @Option(
        help:
            """
            Comma-separated phases to run: rows, reference (raw sockets and edmmd's ALLOCATE latency and pipelined rate), \
            rss (memory and ALLOCATE latency at scale), scaling (default: all).
            """
    )
    var phases: String = BenchPhase.allCases.map(\.rawValue).joined(separator: ",")

    enum BenchPhase: String, CaseIterable {
        case rows, reference, rss, scaling
    }

    @Option(
        help: ArgumentHelp("Probe this running edmmd in the reference phase instead of starting one (to profile it).", valueName: "path"))
    var probeSocket: String?

    var chosenPhases: Set<BenchPhase> { Set(phases.split(separator: ",").compactMap { BenchPhase(rawValue: String($0)) }) }

    func validate() throws {
        _ = try plan()
        guard phases.split(separator: ",").allSatisfy({ BenchPhase(rawValue: String($0)) != nil }) else {
            throw ValidationError("--phases takes rows, reference, rss and scaling")
        }
        if let batches, !(1...100_000).contains(batches) { throw ValidationError("--batches must be 1...100000") }
        guard (16...65536).contains(workingSet) else { throw ValidationError("--working-set must be 16...65536 pages") }
        guard (64...65536).contains(epcMib) else { throw ValidationError("--epc-mib must be 64...65536") }
        guard (BenchRSS.fewEnclaves + 64...100_000).contains(scaleEnclaves) else {
            throw ValidationError("--scale-enclaves must be \(BenchRSS.fewEnclaves + 64)...100000")
        }
    }

    /// The rows to run, in order: for each workload and client count, per-request first.
    func plan() throws -> [(BenchApproach, WorkloadKind, Int)] {
        func list<T>(_ text: String?, _ fallback: [T], _ parse: (String) -> T?) throws -> [T] {
            guard let text else { return fallback }
            return try text.split(separator: ",").map {
                guard let value = parse(String($0)) else { throw ValidationError("unknown value \($0)") }
                return value
            }
        }
        let kinds = try list(workloads, quick ? [.server, .gc, .startup] : WorkloadKind.allCases) { WorkloadKind(rawValue: $0) }
        let counts = try list(clients, quick ? [8] : [1, 8, 64]) { Int($0).flatMap { (1...256).contains($0) ? $0 : nil } }
        let chosen = try list(approaches, BenchApproach.allCases) { BenchApproach(rawValue: $0) }
        return kinds.flatMap { kind in counts.flatMap { count in chosen.map { ($0, kind, count) } } }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        for s in [SIGINT, SIGTERM, SIGHUP] {
            signal(s) { number in
                let daemon = benchDaemonPID.load(ordering: .relaxed)
                if daemon > 0 { kill(daemon, SIGKILL) }
                _exit(128 + number)
            }
        }
        let started = ContinuousClock.now
        let settings = BenchSettings(
            batches: batches ?? (quick ? 150 : 400), workingSet: workingSet, epcBytes: epcMib << 20, seed: seed,
            batchWindowMicros: batchWindowUs)
        var report = BenchReport(
            run: .init(
                quick: quick, seed: seed, batchesPerClient: settings.batches, workingSetPages: workingSet, epcBytes: settings.epcBytes,
                seconds: 0))
        let phases = chosenPhases
        let rows = phases.contains(.rows) ? try plan() : []
        for (index, (approach, workload, count)) in rows.enumerated() {
            progress("row \(index + 1)/\(rows.count): \(approach.rawValue), \(workload.rawValue), \(count) clients")
            do {
                report.rows.append(try runBenchRow(approach, workload, clients: count, settings))
            } catch {
                report.problems.append("\(approach.rawValue) \(workload.rawValue)-\(count): \(error)")
            }
        }
        report.compareRows()
        if phases.contains(.reference) { await measureReference(&report, settings) }
        if phases.contains(.rss) { await measureRSS(&report, settings) }
        if phases.contains(.scaling) {
            progress("core: ledger and batch planning at 10 and 100,000 ranges")
            report.scaling = BenchScaling.measure()
        }
        report.targets = report.judge()
        report.run.seconds = (ContinuousClock.now - started).inSeconds
        print(json ? report.json : report.text)
        let complete =
            report.problems.isEmpty && report.rows.allSatisfy { $0.ledgerMatchesEpcm && $0.problems.isEmpty }
            && (report.rss?.problems.isEmpty ?? true)
        if !complete { throw ExitCode(1) }
        if report.targets.contains(where: { $0.holds != true }) { throw ExitCode(2) }
    }

    private func measureReference(_ report: inout BenchReport, _ settings: BenchSettings) async {
        progress("physical reference: raw and Dispatch SOCK_SEQPACKET peers, and edmmd-full, interleaved")
        let rounds = quick ? 3_000 : 20_000
        let pipelined = quick ? 100_000 : 400_000
        do {
            if let probeSocket {
                report.reference = try await BenchReference.measure(
                    socketPath: probeSocket, rounds: rounds, pipelined: pipelined, window: 64)
            } else {
                let daemon = try BenchDaemon(config: settings.daemonConfig(.full), epcBytes: settings.epcBytes)
                defer { daemon.stop() }
                report.reference = try await BenchReference.measure(
                    socketPath: daemon.socketPath, rounds: rounds, pipelined: pipelined, window: 64)
            }
        } catch {
            report.problems.append("physical reference: \(error)")
        }
    }

    private func measureRSS(_ report: inout BenchReport, _ settings: BenchSettings) async {
        progress("edmmd-full: memory and ALLOCATE latency with \(scaleEnclaves) enclaves of 1 TiB and 64 active clients")
        do {
            // edmmd (which inherits the limit) holds a descriptor per enclave.
            try raiseDescriptorLimit(to: scaleEnclaves + 1024)
            var rssSettings = settings
            rssSettings.batches = quick ? 50 : 200
            report.rss = try await BenchRSS.measure(
                enclaves: scaleEnclaves, enclaveSize: 1 << 40, clients: 64, rounds: quick ? 1_000 : 5_000, rssSettings)
        } catch {
            report.problems.append("RSS: \(error)")
        }
    }

    /// Raises this process's soft RLIMIT_NOFILE to the hard limit, if `needed` is above it.
    private func raiseDescriptorLimit(to needed: Int) throws {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < rlim_t(needed) else { return }
        guard limit.rlim_max >= rlim_t(needed) else {
            throw BenchDaemon.Failure(
                description: "\(scaleEnclaves) enclaves need \(needed) descriptors in edmmd, above the hard RLIMIT_NOFILE "
                    + "(\(limit.rlim_max)): raise it (ulimit -Hn) or lower --scale-enclaves")
        }
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(resource, &limit) == 0 else { throw BenchDaemon.Failure(description: "setrlimit(RLIMIT_NOFILE): \(errno)") }
    }

    private func progress(_ line: String) { printError("edmm-sim bench: \(line)") }
}
