import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc

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
            host = try await SimulatedEnclaveHost.launch(socketPath: socket, blueprint: EnclaveBlueprint(label: label), clientName: "edmm-sim \(label)")
        } catch {
            channel.send(HostLine(kind: .error, message: "\(label): \(error)"))
            throw ExitCode(1)
        }
        channel.send(HostLine(kind: .ready))
        let progress = Task {
            while !Task.isCancelled {
                channel.send(HostLine(kind: .progress, progress: Self.progress(host)))
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        var refusals: [String: UInt64] = [:]
        var problems: [String] = []
        var rng = SeededRandom(seed: seed)
        var generator = kind.make(workingSet: workingSet)
        var heap = Heap()
        while !channel.stopRequested.load(ordering: .acquiring) {
            let steps = generator.next(&heap, &rng)
            guard !steps.isEmpty else { continue }
            let results = await host.perform(steps.map(\.operation))
            for failure in heap.apply(steps, results, &rng) {
                if case .client(.daemon(let error)) = failure {
                    refusals[error.code.description, default: 0] += 1
                } else {
                    problems.append("\(failure)")
                    break
                }
            }
            if !problems.isEmpty { break }
        }
        progress.cancel()
        do {
            try await host.sync()
        } catch {
            problems.append("final SYNC: \(error)")
        }
        await host.settle()
        channel.send(HostLine(kind: .stopped))
        guard await channel.next() == "check" else { throw ExitCode(1) }
        var report = await Self.check(host)
        report.workload = workload
        report.refusals = refusals
        report.problems = problems + report.problems
        channel.send(HostLine(kind: .report, report: report))
        _ = await channel.next()  // "exit"
        do {
            try await host.unregister()
        } catch {
            host.close()
        }
    }

    static func progress(_ host: SimulatedEnclaveHost) -> HostProgress {
        let stats = host.stats
        return HostProgress(requests: stats.requests, ioctlRequests: stats.ioctlRequests, sim: SimTotals(host.countersSinceRegistration))
    }

    /// Compares the enclave's record, edmmd's ledger and the EPCM once nothing is in flight. A
    /// RECLAIM notice can still arrive (another enclave's growth puts the EPC under pressure),
    /// so the comparison is repeated until no notice came in while it ran.
    static func check(_ host: SimulatedEnclaveHost) async -> HostReport {
        var problems: [String] = []
        var attempt = 0
        while true {
            attempt += 1
            let noticesBefore = host.stats.reclaimNotices
            await host.settle()
            do {
                try await host.sync()
            } catch {
                problems.append("SYNC before the check: \(error)")
            }
            let stats: EnclaveStatsReply?
            do {
                stats = try await host.connection.stats(host.handle)
            } catch {
                problems.append("STATS: \(error)")
                stats = nil
            }
            let epcm = host.compareWithEPCM()
            await host.settle()
            let quiet = host.stats.reclaimNotices == noticesBefore && epcm.pagesInTransition == 0
            if quiet || attempt == 5 {
                if !quiet { problems.append("the enclave was still changing after \(attempt) comparisons") }
                return report(host, stats: stats, epcm: epcm, problems: problems)
            }
        }
    }

    static func report(_ host: SimulatedEnclaveHost, stats reply: EnclaveStatsReply?, epcm: EPCMComparison, problems: [String]) -> HostReport {
        let stats = host.stats
        let ledger = reply.map { LedgerCheck(daemon: $0, epcm: epcm) }
            ?? LedgerCheck(committedPages: 0, pooledPages: 0, trimmingPages: 0, removingPages: 0, tcsPages: 0, ledgerEpcmMismatches: nil, problems: ["no STATS from edmmd"])
        return HostReport(
            label: host.blueprint.label, workload: "", enclave: host.handle, pid: getpid(), requests: stats.requests,
            ioctlRequests: stats.ioctlRequests, requestsByVerb: stats.requestsByVerb, messages: stats.messages,
            maxRequestsPerIoctl: stats.maxBatchedRequests, freshPages: stats.freshPagesAccepted, reusedPages: stats.reusedPages,
            reclaimNotices: stats.reclaimNotices, reclaimedPages: stats.reclaimedPages, refusals: [:],
            sim: SimTotals(host.countersSinceRegistration),
            latencyBuckets: stats.latency.sparse.map { [UInt64($0.bucket), $0.count] },
            hostMatchesEPCM: epcm.matches, hostMismatchedPages: epcm.mismatchedPages, pagesInTransition: epcm.pagesInTransition,
            epcmPages: epcm.epcmPages, ledger: ledger, violations: stats.violations.map(\.description),
            asyncErrors: Array(stats.asyncErrors.prefix(20)), problems: problems + epcm.examples)
    }
}

extension LedgerCheck {
    /// edmmd's counts by state against the EPCM's (the managed range), and edmmd's own
    /// page-by-page check when it reports one.
    init(daemon: EnclaveStatsReply, epcm: EPCMComparison) {
        let s = daemon.summary
        let counters = Dictionary(daemon.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        let e = epcm.epcmPages
        var problems: [String] = []
        let regular = (e["reg"] ?? 0) + (e["reg_pr"] ?? 0)
        if s.committedPages + s.pooledPages != regular {
            problems.append("edmmd counts \(s.committedPages) committed + \(s.pooledPages) pooled pages, the EPCM has \(regular) regular pages")
        }
        if s.tcsPages != (e["tcs"] ?? 0) + (e["tcs_modified"] ?? 0) {
            problems.append("edmmd counts \(s.tcsPages) TCS pages, the EPCM has \((e["tcs"] ?? 0) + (e["tcs_modified"] ?? 0))")
        }
        let trim = (e["trim"] ?? 0) + (e["trim_modified"] ?? 0)
        if s.trimmingPages + s.removingPages != trim {
            problems.append("edmmd counts \(s.trimmingPages) trimming + \(s.removingPages) removing pages, the EPCM has \(trim) trim pages")
        }
        if let pending = e["reg_pending"], pending > 0 { problems.append("\(pending) pages are EAUGed but never accepted") }
        let mismatches = counters["ledger_epcm_mismatches"]
        if let mismatches, mismatches > 0 { problems.append("edmmd's own check finds \(mismatches) pages where its ledger and the EPCM differ") }
        self.init(
            committedPages: s.committedPages, pooledPages: s.pooledPages, trimmingPages: s.trimmingPages,
            removingPages: s.removingPages, tcsPages: s.tcsPages, ledgerEpcmMismatches: mismatches, problems: problems)
    }
}
