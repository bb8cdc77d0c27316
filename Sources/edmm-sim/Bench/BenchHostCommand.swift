import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMSimHost
import Glibc
import SGXSimulator

/// `edmm-sim bench-host`: one client process of `edmm-sim bench`. It sets up one enclave (with
/// edmmd, or on its own for per-request), says "ready", runs `--batches` workload batches on
/// "go", says "done" with its measurements, compares the EPCM with its record on "check", and
/// leaves on "exit". With `--idle-enclaves` it also registers, on the same connection, that many
/// enclaves that do nothing (the RSS and scale check).
struct BenchHostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-host", abstract: "One client process of `edmm-sim bench` (internal).", shouldDisplay: false)

    @Option var approach: String
    @Option var socket: String?
    /// per-request: the inherited descriptor of the simulated machine.
    @Option var machineFd: Int32?
    @Option var workload: String
    @Option var seed: UInt64
    @Option var batches: Int
    @Option var workingSet: UInt64
    @Option var enclaveSize: UInt64 = 1 << 27
    @Option var idleEnclaves: Int = 0
    @Option var label: String
    /// Off for enclaves too large to compare page by page (the RSS check's 1 TiB enclaves).
    @Flag(inversion: .prefixedNo) var check = true

    func run() async throws {
        signal(SIGINT, SIG_IGN)
        let channel = HostChannel()
        func fail(_ message: String) -> ExitCode {
            channel.send(text: BenchLine(kind: .error, message: "\(label): \(message)").encoded)
            return ExitCode(1)
        }
        guard let approach = BenchApproach(rawValue: approach), let kind = WorkloadKind(rawValue: workload) else {
            throw fail("unknown approach \(self.approach) or workload \(workload)")
        }
        let blueprint = EnclaveBlueprint(label: label, size: enclaveSize)
        let client: any BenchClient
        var idle: [IdleEnclave] = []
        do {
            if approach.usesDaemon {
                guard let socket else { throw fail("--socket is required for \(approach.rawValue)") }
                let host = try await SimulatedEnclaveHost.launch(socketPath: socket, blueprint: blueprint, clientName: label)
                client = DaemonBenchClient(host)
                // On the client's own connection, as a runtime hosting several enclaves would.
                for i in 0..<idleEnclaves {
                    idle.append(
                        try await IdleEnclave(on: host, blueprint: EnclaveBlueprint(label: "\(label)-idle-\(i)", size: enclaveSize)))
                }
            } else if approach == .staticHeap {
                client = StaticBenchClient(StaticRuntime(blueprint: blueprint))
            } else {
                guard let machineFd else { throw fail("--machine-fd is required for per-request") }
                client = try PerRequestBenchClient(PerRequestRuntime(machineFD: machineFd, blueprint: blueprint))
            }
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail("setting up: \(error)")
        }
        channel.send(text: BenchLine(kind: .ready).encoded)
        guard await channel.next() == "go" else { throw ExitCode(1) }

        var report = BenchHostReport()
        var latency = LatencyHistogram()
        var rng = SplitMix64(seed: seed)
        var generator = kind.make(workingSet: workingSet)
        var heap = Heap()
        let cpuBefore = processCPUSeconds()
        report.startNanoseconds = monotonicNanoseconds()
        var batch = 0
        while batch < batches && report.problems.isEmpty {
            let steps = generator.next(&heap, &rng)
            guard !steps.isEmpty else { continue }
            batch += 1
            report.operations += UInt64(steps.count)
            for step in steps {
                switch step.operation {
                case .free(let range), .trim(let range): report.freedPages += range.count
                default: break
                }
            }
            let failures = await client.perform(steps, into: &heap, &rng, latency: &latency)
            report.peakCommittedPages = max(report.peakCommittedPages, client.committedPages)
            for failure in failures {
                if let refusal = failure.refusal {
                    report.refusals[refusal, default: 0] += 1
                } else {
                    report.problems.append(failure.description)
                }
            }
        }
        report.problems += await client.finish()
        report.endNanoseconds = monotonicNanoseconds()
        report.cpuSeconds = processCPUSeconds() - cpuBefore
        report.latencyBuckets = latency.buckets
        await client.fill(&report)
        channel.send(text: BenchLine(kind: .done, report: report).encoded)

        guard await channel.next() == "check" else { throw ExitCode(1) }
        let (matches, problems) = check ? await client.check() : (true, [])
        channel.send(text: BenchLine(kind: .checked, matches: matches, message: problems.joined(separator: "; ")).encoded)
        _ = await channel.next()  // "exit"
        for enclave in idle { await enclave.unregister() }
        await client.close()
    }
}

/// A workload failure: a daemon refusal (counted, the workload goes on) or a real problem.
struct BenchFailure: CustomStringConvertible {
    var refusal: String?
    var description: String
}

/// What a bench client does, whichever approach runs it.
protocol BenchClient {
    /// Runs one workload batch and applies its results to the heap; records each operation's latency.
    func perform(_ steps: [Step], into heap: inout Heap, _ rng: inout SplitMix64, latency: inout LatencyHistogram) async -> [BenchFailure]
    /// Brings the enclave to rest after the workload (edmmd: TRIM_ACCEPTED backlog, SYNC, notices).
    func finish() async -> [String]
    /// EPC pages the enclave has committed now.
    var committedPages: UInt64 { get }
    /// Counters and protocol figures since setup.
    func fill(_ report: inout BenchHostReport) async
    /// Compares the EPCM with the enclave's record (and with edmmd's ledger).
    func check() async -> (Bool, [String])
    func close() async
}

struct DaemonBenchClient: BenchClient {
    let host: SimulatedEnclaveHost
    let reserve = GrowthReserve()

    init(_ host: SimulatedEnclaveHost) { self.host = host }

    func perform(_ steps: [Step], into heap: inout Heap, _ rng: inout SplitMix64, latency: inout LatencyHistogram) async -> [BenchFailure] {
        // A workload that holds nothing exited: its allocator's kept pages go back with this batch.
        let released = heap.isEmpty ? reserve.takeAll().map { HostOperation.trim($0) } : []
        var results = [Result<HostOutcome, EnclaveHostError>?](repeating: nil, count: steps.count)
        var sent: [Int] = []
        for (index, step) in steps.enumerated() {
            if case .allocate(let pages, true) = step.operation, let kept = reserve.take(pages) {
                results[index] = .success(.allocated(kept, freshPages: 0, reusedPages: pages))
            } else {
                sent.append(index)
            }
        }
        var failures: [BenchFailure] = []
        let start = ContinuousClock.now
        if !released.isEmpty || !sent.isEmpty {
            let replies = await host.perform(released + sent.map { steps[$0].operation })
            for case .failure(let error) in replies.prefix(released.count) {
                failures.append(BenchFailure(description: "trimming kept pages: \(error)"))
            }
            for (index, reply) in zip(sent, replies.dropFirst(released.count)) {
                if case .allocate(let pages, true) = steps[index].operation {
                    results[index] = reply.map { reserve.keepSurplus(of: $0, asked: pages) }
                } else {
                    results[index] = reply
                }
            }
        }
        // The whole batch went out in one exit; every operation is usable when the batch returns.
        let elapsed = ContinuousClock.now - start
        for _ in steps { latency.record(elapsed) }
        return failures
            + heap.apply(steps, results.compactMap { $0 }, &rng).map { failure in
                if case .client(.daemon(let error)) = failure {
                    return BenchFailure(refusal: error.code.description, description: "\(failure)")
                }
                return BenchFailure(description: "\(failure)")
            }
    }

    func finish() async -> [String] {
        do {
            try await host.sync()
        } catch {
            return ["final SYNC: \(error)"]
        }
        await host.settle()
        return []
    }

    var committedPages: UInt64 { host.countersSinceRegistration.committedPages }

    func fill(_ report: inout BenchHostReport) async {
        do {
            let counters = try await host.connection.stats(host.handle).counters
            report.ioctlLowerBound = counters.first { $0.name == "ioctl_lower_bound" }?.value
        } catch {
            report.problems.append("STATS for the ioctl lower bound: \(error)")
        }
        let counters = host.countersSinceRegistration
        let stats = host.stats
        report.sim = SimTotals(counters)
        report.cycles = CostModel.default.cycles(for: counters)
        report.messages = stats.messages
        report.roundTripBuckets = stats.latency.buckets
        report.problems += stats.violations.map(\.description) + stats.asyncErrors
    }

    func check() async -> (Bool, [String]) {
        let verification = await host.verify()
        let ledgerProblems = verification.ledger?.problems ?? []
        return (verification.matches, verification.problems + verification.epcm.examples + ledgerProblems)
    }

    func close() async {
        do {
            try await host.unregister()
        } catch {
            host.close()
        }
    }
}

struct PerRequestBenchClient: BenchClient {
    let runtime: PerRequestRuntime
    let baseline: CounterSnapshot

    init(_ runtime: PerRequestRuntime) {
        self.runtime = runtime
        baseline = runtime.enclave.counters
    }

    func perform(_ steps: [Step], into heap: inout Heap, _ rng: inout SplitMix64, latency: inout LatencyHistogram) async -> [BenchFailure] {
        let results = runtime.perform(steps.map(\.operation), latency: &latency)
        return heap.apply(steps, results, &rng).map { BenchFailure(description: "\($0)") }
    }

    func finish() async -> [String] { [] }

    var committedPages: UInt64 { runtime.enclave.counters.since(baseline).committedPages }

    func fill(_ report: inout BenchHostReport) {
        let counters = runtime.enclave.counters.since(baseline)
        report.sim = SimTotals(counters)
        report.cycles = CostModel.default.cycles(for: counters)
        report.ioctlLowerBound = runtime.ioctlLowerBound
    }

    func check() async -> (Bool, [String]) {
        let mismatched = runtime.mismatchedPages()
        return (mismatched == 0, mismatched == 0 ? [] : ["\(mismatched) pages differ from the enclave's record"])
    }

    func close() async { runtime.enclave.close() }
}

struct StaticBenchClient: BenchClient {
    let runtime: StaticRuntime

    init(_ runtime: StaticRuntime) { self.runtime = runtime }

    func perform(_ steps: [Step], into heap: inout Heap, _ rng: inout SplitMix64, latency: inout LatencyHistogram) async -> [BenchFailure] {
        let results = runtime.perform(steps.map(\.operation), latency: &latency)
        return heap.apply(steps, results, &rng).map { BenchFailure(description: "\($0)") }
    }

    func finish() async -> [String] { [] }

    /// The whole heap is committed from the moment the enclave is built.
    var committedPages: UInt64 { runtime.peakPages }

    func fill(_ report: inout BenchHostReport) {
        report.loadCycles = runtime.loadCycles
        report.ioctlLowerBound = 0
    }

    /// No EPCM changes after EINIT; the record's pages must add up to the running count.
    func check() async -> (Bool, [String]) {
        let recorded = runtime.recordedPages
        let ok = recorded == runtime.heldPages
        return (ok, ok ? [] : ["the record holds \(recorded) pages, the running count \(runtime.heldPages)"])
    }

    func close() async {}
}

extension CounterSnapshot {
    /// Pages added to the enclave (EAUG, EADD) and not yet removed (EREMOVE), wrapping like the counters.
    var committedPages: UInt64 { self[.eaug] &+ self[.eadd] &- self[.eremove] }
}
