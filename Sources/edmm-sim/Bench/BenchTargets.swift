/// One performance target (docs/benchmarks.md) and whether this run meets it.
struct BenchTarget: Codable {
    var name: String
    /// The measured (or modelled) figure and the bound it must stay within.
    var value: Double?
    var limit: Double
    /// "max": value ≤ limit; "min": value ≥ limit.
    var bound: String
    /// nil: this run did not measure it.
    var holds: Bool?
    var detail: String

    static func atMost(_ name: String, _ value: Double?, _ limit: Double, _ detail: String) -> BenchTarget {
        BenchTarget(name: name, value: value, limit: limit, bound: "max", holds: value.map { $0 <= limit }, detail: detail)
    }

    static func atLeast(_ name: String, _ value: Double?, _ limit: Double, _ detail: String) -> BenchTarget {
        BenchTarget(name: name, value: value, limit: limit, bound: "min", holds: value.map { $0 >= limit }, detail: detail)
    }
}

extension BenchReport {
    /// The targets, judged on this run's figures: those of a workload only if its rows ran.
    func judge() -> [BenchTarget] {
        var targets: [BenchTarget] = []
        let workloads = [WorkloadKind.server, .gc, .startup].filter { kind in rows.contains { $0.workload == kind.rawValue } }
        for workload in workloads {
            let row = rows.first { $0.approach == BenchApproach.full.rawValue && $0.workload == workload.rawValue && $0.clients == 8 }
            let detail = "edmmd-full vs per-request, \(workload.rawValue), 8 clients, per request"
            targets.append(.atMost("\(workload.rawValue)-8: modelled exits vs per-request", row?.ratios?.exits, 0.25, detail))
            targets.append(.atMost("\(workload.rawValue)-8: modelled cycles vs per-request", row?.ratios?.cycles, 0.5, detail))
            if workload != .startup {
                targets.append(.atMost("\(workload.rawValue)-8: ioctls vs per-request", row?.ratios?.ioctls, 0.10, detail))
            }
            targets.append(
                .atMost(
                    "\(workload.rawValue)-8: ioctls vs their lower bound",
                    ratio(row.map { Double($0.ioctls) }, row?.ioctlLowerBound.map { Double($0) }), 1.0,
                    "edmmd-full's ioctls over one per contiguous run of one operation per flush (1: no ioctl to spare)"))
            let fixedHeap = rows.first {
                $0.approach == BenchApproach.staticHeap.rawValue && $0.workload == workload.rawValue && $0.clients == 8
            }
            let vsStatic = "edmmd-full vs static, \(workload.rawValue), 8 clients"
            targets.append(
                .atMost(
                    "\(workload.rawValue)-8: load + run cycles vs static",
                    ratio(row.map { Double($0.loadCycles + $0.cycles) }, fixedHeap.map { Double($0.loadCycles + $0.cycles) }), 1.0,
                    vsStatic + ": modelled cycles of building the heap and of the workload"))
            targets.append(
                .atMost(
                    "\(workload.rawValue)-8: peak committed EPC vs static",
                    ratio(row.map { Double($0.peakCommittedPages) }, fixedHeap.map { Double($0.peakCommittedPages) }), 0.5,
                    vsStatic + ": pages committed at once, summed over the enclaves"))
        }
        if let reference {
            targets.append(
                .atMost(
                    "allocate p50 vs raw ping-pong", ratio(reference.edmmd.pingPongUs.p50, reference.raw.pingPongUs.p50), 1.5,
                    "fresh one-page ALLOCATE round trip from a raw client over a raw SOCK_SEQPACKET round trip of the same sizes, "
                        + "interleaved"))
            targets.append(
                .atLeast(
                    "pipelined throughput vs raw pipelined", ratio(reference.edmmd.pipelinedPerSecond, reference.raw.pipelinedPerSecond),
                    0.5,
                    "FREE/ALLOCATE answered per second over raw messages echoed per second, \(reference.window) in flight, interleaved"))
        }
        if let rss {
            targets.append(
                .atMost(
                    "daemon RSS, \(rss.enclaves) enclaves of \(rss.enclaveSizeBytes >> 40) TiB, \(rss.activeClients) active clients (MiB)",
                    Double(rss.daemon.vmHwmKib) / 1024, 64, "peak VmHWM of edmmd (VmRSS at the end \(rss.daemon.vmRssKib / 1024) MiB)"))
            targets.append(
                .atMost(
                    "allocate p50, \(rss.enclaves) registered enclaves vs \(rss.allocate.fewEnclaves)",
                    ratio(rss.allocate.all.p50, rss.allocate.few.p50), 1.2,
                    "fresh one-page ALLOCATE round trip, \(rss.allocate.rounds) rounds with all registered, "
                        + "\(2 * rss.allocate.rounds) with few"))
        }
        if let scaling {
            targets.append(
                .atMost(
                    "ledger FREE+ALLOCATE, 100,000 ranges vs 10 (O(log n))", scaling.ledgerGrowth, 10,
                    "cost growth over 10,000x more ranges; O(n) would be ~10,000x"))
            targets.append(
                .atMost(
                    "batch planning per request, 100,000 vs 10 (O(log n))", scaling.planGrowth, 10,
                    "cost growth over 10,000x more requests; O(n) would be ~10,000x"))
        }
        return targets
    }

    private func ratio(_ a: Double?, _ b: Double?) -> Double? {
        guard let a, let b, b > 0 else { return nil }
        return a / b
    }
}
