import EDMMClient
import EDMMSimHost

/// One row of `edmm-sim bench`: one approach running one workload with N clients.
struct BenchRow: Codable {
    /// This row's figure per request over `per-request`'s for the same workload and clients
    /// (below 1: fewer or faster; throughput above 1: more).
    struct Ratios: Codable {
        var ioctls: Double?
        var exits: Double?
        var cycles: Double?
        var latencyP50: Double?
        var latencyP99: Double?
        var throughput: Double?
        var cpu: Double?
    }

    var approach: String
    var workload: String
    var clients: Int
    /// Workload operations issued (the same operations for every approach, from the same seeds).
    var requests: UInt64
    /// SGX2 ioctl calls (MODIFY_TYPES, RESTRICT_PERMISSIONS, REMOVE_PAGES), as the simulator counted them.
    var ioctls: UInt64
    var ioctlPages: UInt64
    var pagesPerIoctl: Double
    /// The fewest ioctls the flushes could have run: one per maximal contiguous run of pages of one
    /// operation (kind and target) in each flush (docs/benchmarks.md). nil if a client lacked it.
    var ioctlLowerBound: UInt64?
    /// Modelled enclave exits: EEXIT (OCALLs and ECALL returns) and AEX (faults taken in the enclave).
    var exits: UInt64
    var exitsBreakdown: ExitBreakdown
    var freedMib: Double
    var exitsPerMibFreed: Double?
    /// Modelled enclave cycles (simulator counts priced by the cost table of docs/simulator.md).
    var cycles: UInt64
    /// Modelled cycles of building the heap before the workload (static: EADD + EEXTEND of its peak).
    var loadCycles: UInt64
    /// Summed over the clients: the most EPC pages each enclave had committed at once.
    var peakCommittedPages: UInt64
    /// Measured: per request, from the enclave issuing it to the enclave holding its result.
    var latencyUs: LatencySummary
    /// Measured, edmmd only: each answered request's socket round trip.
    var roundTripUs: LatencySummary?
    /// Measured: requests per second of wall clock, from the first client's start to the last one's end.
    var throughput: Double
    var durationS: Double
    /// Measured CPU time of edmmd (nil without a daemon) and of all the clients, during the workload.
    var daemonCpuS: Double?
    var clientCpuS: Double
    var messages: UInt64
    var refusals: [String: UInt64]
    /// Every client's EPCM matches its own record (and edmmd's ledger) at the end.
    var ledgerMatchesEpcm: Bool
    var problems: [String]
    var ratios: Ratios?

    init(
        approach: BenchApproach, workload: WorkloadKind, clients: Int, reports: [BenchHostReport], daemonCPU: Double?,
        matches: Bool, problems: [String]
    ) {
        self.approach = approach.rawValue
        self.workload = workload.rawValue
        self.clients = clients
        let sim = reports.map(\.sim).reduce(SimTotals(), +)
        var latency = LatencyHistogram()
        var roundTrip = LatencyHistogram()
        for report in reports {
            latency.merge(LatencyHistogram(buckets: report.latencyBuckets))
            roundTrip.merge(LatencyHistogram(buckets: report.roundTripBuckets))
        }
        requests = reports.reduce(0) { $0 + $1.operations }
        ioctls = sim.ioctls
        ioctlPages = sim.ioctlPages
        ioctlLowerBound = reports.reduce(UInt64?.some(0)) { total, r in total.flatMap { t in r.ioctlLowerBound.map { t + $0 } } }
        pagesPerIoctl = sim.ioctls > 0 ? Double(sim.ioctlPages) / Double(sim.ioctls) : 0
        exits = sim.exits
        exitsBreakdown = sim.exitBreakdown
        let freedPages = reports.reduce(0) { $0 + $1.freedPages }
        freedMib = Double(freedPages) / 256
        exitsPerMibFreed = freedPages > 0 ? Double(sim.exits) / freedMib : nil
        cycles = reports.reduce(0) { $0 + $1.cycles }
        loadCycles = reports.reduce(0) { $0 + $1.loadCycles }
        peakCommittedPages = reports.reduce(0) { $0 + $1.peakCommittedPages }
        latencyUs = LatencySummary(latency)
        roundTripUs = approach.usesDaemon ? LatencySummary(roundTrip) : nil
        let start = reports.map(\.startNanoseconds).min() ?? 0
        let end = reports.map(\.endNanoseconds).max() ?? 0
        durationS = end > start ? Double(end - start) / 1e9 : 0
        throughput = durationS > 0 ? Double(requests) / durationS : 0
        daemonCpuS = daemonCPU
        clientCpuS = reports.reduce(0) { $0 + $1.cpuSeconds }
        messages = reports.reduce(0) { $0 + $1.messages }
        refusals = reports.reduce(into: [:]) { total, r in r.refusals.forEach { total[$0.key, default: 0] += $0.value } }
        ledgerMatchesEpcm = matches
        self.problems = problems + reports.flatMap(\.problems)
    }

    /// Sets `ratios` against the per-request row of the same workload and clients.
    mutating func compare(with baseline: BenchRow) {
        func perRequest(_ value: Double, _ requests: UInt64) -> Double { requests > 0 ? value / Double(requests) : 0 }
        func ratio(_ a: Double?, _ b: Double?) -> Double? {
            guard let a, let b, b > 0 else { return nil }
            return a / b
        }
        let mine = requests
        let theirs = baseline.requests
        ratios = Ratios(
            ioctls: ratio(perRequest(Double(ioctls), mine), perRequest(Double(baseline.ioctls), theirs)),
            exits: ratio(perRequest(Double(exits), mine), perRequest(Double(baseline.exits), theirs)),
            cycles: ratio(perRequest(Double(cycles), mine), perRequest(Double(baseline.cycles), theirs)),
            latencyP50: ratio(latencyUs.p50, baseline.latencyUs.p50),
            latencyP99: ratio(latencyUs.p99, baseline.latencyUs.p99),
            throughput: ratio(throughput, baseline.throughput),
            cpu: ratio(
                perRequest(clientCpuS + (daemonCpuS ?? 0), mine),
                perRequest(baseline.clientCpuS + (baseline.daemonCpuS ?? 0), theirs)))
    }
}
