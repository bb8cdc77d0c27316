import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import FoundationEssentials
import SGXSimulator

/// What `edmm-sim run` prints at the end: totals over every host, the latency percentiles, the
/// ledger verdict, and one row per enclave.
struct RunSummary: Encodable {
    struct EPC: Encodable {
        var totalBytes: UInt64
        var committedBytes: UInt64
        var residentBytes: UInt64
        var ewb: UInt64
    }

    struct DaemonTotals: Encodable {
        var requests: UInt64
        var ioctls: UInt64
    }

    struct Row: Encodable {
        var label: String
        var workload: String
        var enclave: UInt64
        var requests: UInt64
        var ioctlRequests: UInt64
        var ioctls: UInt64
        var pagesPerIoctl: Double
        var maxRequestsPerIoctl: UInt32
        var exits: UInt64
        var committedPages: UInt64
        var pooledPages: UInt64
        var tcsPages: UInt64
        var reclaimedPages: UInt64
        var refusals: [String: UInt64]
        var latencyUs: LatencySummary
        var hostMatchesEpcm: Bool
        var ledgerMatchesEpcm: Bool
    }

    var enclaves: Int
    var workload: String
    var seed: UInt64
    var durationSeconds: Double
    var batching: Bool
    /// Memory requests the hosts sent (ALLOCATE, FREE, TRIM, TRIM_ACCEPTED, RESTRICT, RELAX, MAKE_TCS).
    var requests: UInt64
    var requestsPerSecond: Double
    /// Those of them that need an ioctl (TRIM, TRIM_ACCEPTED, RESTRICT, MAKE_TCS).
    var ioctlRequests: UInt64
    /// SGX2 ioctl calls on the hosts' enclaves, as the simulator counted them.
    var ioctls: UInt64
    var ioctlEbusy: UInt64
    var ioctlPages: UInt64
    var pagesPerIoctl: Double
    /// The most requests one of edmmd's flushes served (from its replies); 1 means no batching.
    var maxRequestsPerIoctl: UInt32
    /// Request messages the hosts sent (one OCALL each).
    var messages: UInt64
    var exits: UInt64
    var exitsBreakdown: ExitBreakdown
    var latencyUs: LatencySummary
    var freshPages: UInt64
    var reusedPages: UInt64
    var reclaimedPages: UInt64
    var refusals: [String: UInt64]
    /// Every enclave's EPCM matches both edmmd's ledger and the enclave's own record.
    var ledgerMatchesEpcm: Bool
    var daemonLedgerMatchesEpcm: Bool
    var hostsMatchEpcm: Bool
    var epc: EPC
    var daemon: DaemonTotals?
    var problems: [String]
    var perEnclave: [Row]

    var passed: Bool { ledgerMatchesEpcm && problems.isEmpty }

    init(
        plan: [(label: String, workload: WorkloadKind, seed: UInt64)], seed: UInt64, elapsed: Duration, reports: [HostReport],
        failures: [String], before: StatusReply, after: StatusReply?, machine: SimulatedMachine
    ) {
        let seconds = elapsed.inSeconds
        let sim = reports.map(\.sim).reduce(SimTotals(), +)
        var latency = LatencyHistogram()
        for report in reports { latency.merge(report.latency) }
        enclaves = plan.count
        workload = Set(plan.map(\.workload)).count == 1 ? plan.first?.workload.rawValue ?? "" : "mixed"
        self.seed = seed
        durationSeconds = seconds
        batching = before.batching
        requests = reports.reduce(0) { $0 + $1.requests }
        requestsPerSecond = seconds > 0 ? Double(requests) / seconds : 0
        ioctlRequests = reports.reduce(0) { $0 + $1.ioctlRequests }
        ioctls = sim.ioctls
        ioctlEbusy = sim.ioctlEbusy
        ioctlPages = sim.ioctlPages
        pagesPerIoctl = sim.ioctls > 0 ? Double(sim.ioctlPages) / Double(sim.ioctls) : 0
        maxRequestsPerIoctl = reports.map(\.maxRequestsPerIoctl).max() ?? 0
        messages = reports.reduce(0) { $0 + $1.messages }
        exits = sim.exits
        exitsBreakdown = sim.exitBreakdown
        latencyUs = LatencySummary(latency)
        freshPages = reports.reduce(0) { $0 + $1.freshPages }
        reusedPages = reports.reduce(0) { $0 + $1.reusedPages }
        reclaimedPages = reports.reduce(0) { $0 + $1.reclaimedPages }
        refusals = reports.reduce(into: [:]) { total, r in r.refusals.forEach { total[$0.key, default: 0] += $0.value } }
        let complete = reports.count == plan.count
        daemonLedgerMatchesEpcm = complete && reports.allSatisfy(\.ledger.matches)
        hostsMatchEpcm = complete && reports.allSatisfy(\.hostMatchesEPCM)
        ledgerMatchesEpcm = daemonLedgerMatchesEpcm && hostsMatchEpcm
        let stats = machine.stats
        epc = EPC(
            totalBytes: after?.epcTotalBytes ?? before.epcTotalBytes, committedBytes: after?.epcCommittedBytes ?? 0,
            residentBytes: stats.usedPages * 4096, ewb: stats.ewb)
        daemon = after.map {
            DaemonTotals(requests: $0.requestsTotal &- before.requestsTotal, ioctls: $0.ioctlsTotal &- before.ioctlsTotal)
        }
        var problems = failures
        if !complete { problems.append("\(plan.count - reports.count) of \(plan.count) hosts did not report") }
        for r in reports {
            problems += (r.problems + r.violations + r.asyncErrors + r.ledger.problems).map { "\(r.label): \($0)" }
        }
        self.problems = problems
        perEnclave = reports.map { r in
            var l = LatencyHistogram()
            l.merge(r.latency)
            return Row(
                label: r.label, workload: r.workload, enclave: r.enclave, requests: r.requests, ioctlRequests: r.ioctlRequests,
                ioctls: r.sim.ioctls, pagesPerIoctl: r.sim.ioctls > 0 ? Double(r.sim.ioctlPages) / Double(r.sim.ioctls) : 0,
                maxRequestsPerIoctl: r.maxRequestsPerIoctl, exits: r.sim.exits, committedPages: r.ledger.committedPages,
                pooledPages: r.ledger.pooledPages, tcsPages: r.ledger.tcsPages, reclaimedPages: r.reclaimedPages,
                refusals: r.refusals, latencyUs: LatencySummary(l),
                hostMatchesEpcm: r.hostMatchesEPCM, ledgerMatchesEpcm: r.ledger.matches)
        }
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return #"{"error":"unencodable summary"}"# }
        return String(decoding: data, as: UTF8.self)
    }

    var text: String {
        func us(_ v: Double?) -> String { v.map { fixed($0, 0) + " us" } ?? "-" }
        var lines = [
            """
            edmm-sim run: \(enclaves) enclaves (\(workload)), seed \(seed), \(fixed(durationSeconds, 1)) s, batching \
            \(batching ? "on" : "off")
            """,
            """
            requests   \(grouped(requests)) (\(grouped(UInt64(requestsPerSecond)))/s), \(grouped(ioctlRequests)) needing an ioctl, in \
            \(grouped(messages)) messages
            """,
            """
            ioctls     \(grouped(ioctls)) for \(grouped(ioctlPages)) pages: \(fixed(pagesPerIoctl, 2)) pages per ioctl; one flush served \
            up to \(maxRequestsPerIoctl) requests
            """,
            """
            exits      \(grouped(exits)): \(grouped(exitsBreakdown.ocall)) OCALL, \(grouped(exitsBreakdown.ecall)) ECALL, \
            \(grouped(exitsBreakdown.aex)) AEX
            """,
            "latency    p50 \(us(latencyUs.p50)), p99 \(us(latencyUs.p99))",
            """
            pages      \(grouped(freshPages)) fresh (EACCEPTed), \(grouped(reusedPages)) reused from the pool, \(grouped(reclaimedPages)) \
            reclaimed by edmmd
            """,
            "EPC        \(mebibytes(epc.committedBytes)) of \(mebibytes(epc.totalBytes)) MiB committed at the end, EWB \(grouped(epc.ewb))",
        ]
        if !refusals.isEmpty {
            lines.append("refused    " + refusals.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        }
        lines.append(
            ledgerMatchesEpcm
                ? "ledger     matches the simulated EPCM in every enclave (edmmd's ledger and each enclave's own record)"
                : """
                ledger     DOES NOT MATCH the simulated EPCM (edmmd: \(daemonLedgerMatchesEpcm ? "ok" : "differs"), enclaves: \
                \(hostsMatchEpcm ? "ok" : "differ"))
                """
        )
        lines.append("")
        lines.append(row("enclave", "requests", "ioctls", "pages/ioctl", "max/ioctl", "exits", "committed", "pooled", "ledger"))
        for r in perEnclave {
            lines.append(
                row(
                    r.label, grouped(r.requests), grouped(r.ioctls), fixed(r.pagesPerIoctl, 2), "\(r.maxRequestsPerIoctl)",
                    grouped(r.exits), grouped(r.committedPages), grouped(r.pooledPages),
                    r.ledgerMatchesEpcm && r.hostMatchesEpcm ? "ok" : "DIFFERS"))
        }
        if !problems.isEmpty {
            lines.append("")
            lines += problems.prefix(40).map { "problem: \($0)" }
        }
        return lines.joined(separator: "\n")
    }

    private func row(_ cells: String...) -> String {
        let widths = [16, 10, 9, 12, 10, 10, 10, 9, 7]
        return zip(cells, widths).enumerated().map { i, pair in
            let (cell, width) = pair
            let pad = String(repeating: " ", count: max(0, width - cell.count))
            return i == 0 ? cell + pad : pad + cell
        }.joined(separator: " ")
    }
}
