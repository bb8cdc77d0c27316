import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc
import Synchronization

/// `edmm-sim run-host`: one simulated enclave host process of `edmm-sim run`. It builds and
/// registers an enclave, replays its workload until told to stop, then reports what it did and
/// how its enclave's EPCM compares with its own record and with edmmd's ledger.
struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-host", abstract: "One simulated enclave host of `edmm-sim run` (internal).", shouldDisplay: false)

    @Option var socket: String
    @Option var workload: String
    @Option var seed: UInt64
    @Option var label: String
    @Option var workingSet: UInt64
    /// Seconds to keep trying to get back to edmmd after losing it; 0: never.
    @Option var reconnectFor: Int = 0

    func run() async throws {
        // Ctrl-C reaches the whole process group; `edmm-sim run` decides when hosts stop.
        signal(SIGINT, SIG_IGN)
        let channel = HostChannel()
        guard let kind = WorkloadKind(rawValue: workload) else {
            channel.send(HostLine(kind: .error, message: "unknown workload \(workload)"))
            throw ExitCode(1)
        }
        let host: SimulatedEnclaveHost
        do {
            host = try await SimulatedEnclaveHost.launch(
                socketPath: socket, blueprint: EnclaveBlueprint(label: label), clientName: "edmm-sim \(label)",
                reconnect: reconnectFor > 0 ? ReconnectPolicy(giveUpAfter: .seconds(reconnectFor)) : nil)
        } catch {
            channel.send(HostLine(kind: .error, message: "\(label): \(error)"))
            throw ExitCode(1)
        }
        channel.send(HostLine(kind: .ready))
        let phase = Mutex("workload")
        let progress = Task {
            while !Task.isCancelled {
                channel.send(HostLine(kind: .progress, progress: Self.progress(host, phase: phase.withLock { $0 })))
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        defer { progress.cancel() }
        var refusals: [String: UInt64] = [:]
        var problems: [String] = []
        var rng = SplitMix64(seed: seed)
        var generator = kind.make(workingSet: workingSet)
        var heap = Heap()
        while !channel.stopRequested.load(ordering: .acquiring) {
            let steps = generator.next(&heap, &rng)
            guard !steps.isEmpty else { continue }
            let results = await host.perform(steps.map(\.operation))
            for failure in heap.apply(steps, results, &rng, keepsBlock: { !Self.isInterrupted($0) }) {
                if case .client(.daemon(let error)) = failure {
                    refusals[error.code.description, default: 0] += 1
                } else if reconnectFor > 0, Self.isInterrupted(failure) {
                    // edmmd died with it unanswered; the host settled its pages (docs/client.md).
                    refusals["interrupted", default: 0] += 1
                } else {
                    problems.append("\(failure)")
                    break
                }
            }
            if !problems.isEmpty { break }
        }
        phase.withLock { $0 = "stopping" }
        do {
            try await host.sync()
        } catch {
            problems.append("final SYNC: \(error)")
        }
        await host.settle()
        channel.send(HostLine(kind: .stopped))
        guard await channel.next() == "check" else { throw ExitCode(1) }
        phase.withLock { $0 = "checking" }
        let report = Self.report(host, await host.verify(), workload: workload, refusals: refusals, problems: problems)
        channel.send(HostLine(kind: .report, report: report))
        phase.withLock { $0 = "reported" }
        _ = await channel.next()  // "exit"
        do {
            try await host.unregister()
        } catch {
            host.close()
        }
    }

    static func isInterrupted(_ error: EnclaveHostError) -> Bool {
        if case .interrupted = error { true } else { false }
    }

    static func progress(_ host: SimulatedEnclaveHost, phase: String) -> HostProgress {
        let stats = host.stats
        return HostProgress(
            requests: stats.requests, ioctlRequests: stats.ioctlRequests, sim: SimTotals(host.countersSinceRegistration), phase: phase,
            waitingFor: Dictionary(uniqueKeysWithValues: host.connection.requestsInFlight.map { ($0.key.description, $0.value) }),
            unhandledNotices: host.unhandledNotices)
    }

    static func report(
        _ host: SimulatedEnclaveHost, _ verification: HostVerification, workload: String, refusals: [String: UInt64], problems: [String]
    ) -> HostReport {
        let stats = host.stats
        let epcm = verification.epcm
        let ledger =
            verification.ledger
            ?? LedgerComparison(
                committedPages: 0, pooledPages: 0, trimmingPages: 0, removingPages: 0, tcsPages: 0, ledgerEpcmMismatches: nil,
                problems: ["no STATS from edmmd"])
        return HostReport(
            label: host.blueprint.label, workload: workload, enclave: host.handle, pid: getpid(), requests: stats.requests,
            ioctlRequests: stats.ioctlRequests, requestsByVerb: stats.requestsByVerb, messages: stats.messages,
            maxRequestsPerIoctl: stats.maxBatchedRequests, freshPages: stats.freshPagesAccepted, reusedPages: stats.reusedPages,
            reclaimNotices: stats.reclaimNotices, reclaimedPages: stats.reclaimedPages, refusals: refusals,
            sim: SimTotals(host.countersSinceRegistration),
            latencyBuckets: stats.latency.sparse.map { [UInt64($0.bucket), $0.count] },
            hostMatchesEPCM: epcm.matches, hostMismatchedPages: epcm.mismatchedPages, pagesInTransition: epcm.pagesInTransition,
            epcmPages: epcm.epcmPages, ledger: ledger, violations: stats.violations.map(\.description),
            asyncErrors: Array(stats.asyncErrors.prefix(20)), problems: problems + verification.problems + epcm.examples)
    }
}
