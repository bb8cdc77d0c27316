import FoundationEssentials

/// Everything one `edmm-sim bench` run measured, and the targets judged on it.
struct BenchReport: Codable {
    struct Run: Codable {
        var quick: Bool
        var seed: UInt64
        var batchesPerClient: Int
        var workingSetPages: UInt64
        var epcBytes: UInt64
        var seconds: Double
    }

    var run: Run
    var rows: [BenchRow] = []
    var reference: BenchReference?
    var rss: BenchRSS?
    var scaling: BenchScaling?
    var targets: [BenchTarget] = []
    var problems: [String] = []

    /// Fills in every row's ratios against the per-request row of its workload and clients.
    mutating func compareRows() {
        for index in rows.indices {
            guard
                let baseline = rows.first(where: {
                    $0.approach == BenchApproach.perRequest.rawValue && $0.workload == rows[index].workload
                        && $0.clients == rows[index].clients
                })
            else { continue }
            rows[index].compare(with: baseline)
        }
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        do {
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        } catch {
            let reason = String("\(error)".filter { $0 != "\"" && $0 != "\\" && $0 >= " " })
            return #"{"error":"unencodable report: "# + reason + #""}"#
        }
    }

    var text: String {
        var lines = [
            """
            edmm-sim bench\(run.quick ? " --quick" : ""): seed \(run.seed), \(run.batchesPerClient) batches per client, working set \
            \(run.workingSetPages) pages, EPC \(run.epcBytes >> 20) MiB, \(fixed(run.seconds, 0)) s
            """,
            "",
            "Modelled: ioctls, pages/ioctl, exits, exits/MiB, cycles (simulator counts, docs/simulator.md cost table).",
            "ioctl LB: the lower bound, one ioctl per contiguous run of one operation and target in each flush.",
            "load Mc: building the heap before the workload (static: EADD + EEXTEND of its peak).",
            "peak pg: the most EPC pages committed at once, summed over the enclaves.",
            "Measured: latency (per request, issue to result), throughput, CPU (daemon + clients).",
            "Ratios (x): per request, against per-request of the same workload and clients.",
            "",
            cells(
                "workload", "clients", "approach", "requests", "ioctls", "ioctl LB", "pg/ioctl", "exits", "exits/MiB", "Mcycles", "load Mc",
                "peak pg", "p50 us", "p99 us", "req/s", "cpu s", "ioctls x", "exits x", "p50 x", "req/s x", "EPCM"),
        ]
        for row in rows {
            func ratio(_ value: Double?) -> String { value.map { fixed($0, 2) } ?? "-" }
            lines.append(
                cells(
                    row.workload, "\(row.clients)", row.approach, grouped(row.requests), grouped(row.ioctls),
                    row.ioctlLowerBound.map(grouped) ?? "-", fixed(row.pagesPerIoctl, 1),
                    grouped(row.exits), row.exitsPerMibFreed.map { fixed($0, 0) } ?? "-", fixed(Double(row.cycles) / 1e6, 0),
                    fixed(Double(row.loadCycles) / 1e6, 0), grouped(row.peakCommittedPages),
                    row.latencyUs.p50.map { fixed($0, 1) } ?? "-", row.latencyUs.p99.map { fixed($0, 0) } ?? "-",
                    grouped(UInt64(row.throughput)), fixed(row.clientCpuS + (row.daemonCpuS ?? 0), 2), ratio(row.ratios?.ioctls),
                    ratio(row.ratios?.exits), ratio(row.ratios?.latencyP50), ratio(row.ratios?.throughput),
                    row.ledgerMatchesEpcm ? "ok" : "DIFFERS"))
        }
        if let reference {
            lines.append("")
            lines.append(
                """
                reference, interleaved (\(reference.requestBytes) B out, \(reference.replyBytes) B back; \(reference.window) in flight \
                when pipelined):
                """
            )
            for (name, exchange) in [
                ("raw peer", reference.raw), ("dispatch peer", reference.dispatch), ("edmmd ALLOCATE", reference.edmmd),
            ] {
                lines.append(
                    """
                      \(name.padding(15)) round trip p50 \(us(exchange.pingPongUs.p50)), p99 \(us(exchange.pingPongUs.p99)); pipelined \
                    \(grouped(UInt64(exchange.pipelinedPerSecond)))/s
                    """
                )
            }
            lines.append(
                """
                  edmmd ALLOCATE through the client library p50 \(us(reference.allocateClientLibraryUs.p50)), p99 \
                \(us(reference.allocateClientLibraryUs.p99)); from the pool p50 \(us(reference.allocatePooledUs.p50)), p99 \
                \(us(reference.allocatePooledUs.p99)); pipelined through the client library \
                \(grouped(UInt64(reference.pipelinedClientLibraryPerSecond)))/s; CPU per pipelined request \
                \(fixed(reference.daemonCpuUsPerRequest, 1)) us edmmd, \(fixed(reference.clientCpuUsPerRequest, 1)) us client library
                """
            )
        }
        if let rss {
            let m = rss.daemon
            lines.append(
                """
                edmmd memory with \(rss.enclaves) enclaves of \(rss.enclaveSizeBytes >> 40) TiB, \(rss.activeClients) active clients: \
                VmRSS \(m.vmRssKib / 1024) MiB (anon \(m.rssAnonKib / 1024), file \(m.rssFileKib / 1024), shmem \(m.rssShmemKib / 1024)), \
                peak \(m.vmHwmKib / 1024) MiB; fresh ALLOCATE p50 \(us(rss.allocate.few.p50)) with \(rss.allocate.fewEnclaves) \
                registered, \(us(rss.allocate.all.p50)) with all
                """
            )
        }
        if let scaling {
            for point in scaling.points {
                lines.append(
                    """
                    core at \(grouped(UInt64(point.ranges))) ranges: ledger FREE+ALLOCATE \(fixed(point.ledgerFreeAllocateNs, 0)) ns, \
                    batch planning \(fixed(point.planPerRequestNs, 0)) ns per request
                    """
                )
            }
        }
        lines.append("")
        lines.append("targets:")
        for target in targets {
            let verdict = target.holds.map { $0 ? "holds" : "MISSED" } ?? "not measured"
            let value = target.value.map { fixed($0, 3) } ?? "-"
            lines.append(
                """
                  \(verdict.padding(12)) \(target.name): \(value) (\(target.bound == "max" ? "<=" : ">=") \(fixed(target.limit, 2)); \
                \(target.detail))
                """
            )
        }
        let rowProblems = rows.flatMap { row in row.problems.map { "\(row.approach) \(row.workload)-\(row.clients): \($0)" } }
        let allProblems = problems + rowProblems + (rss?.problems ?? [])
        if !allProblems.isEmpty {
            lines.append("")
            lines += allProblems.prefix(40).map { "problem: \($0)" }
        }
        return lines.joined(separator: "\n")
    }

    private func us(_ value: Double?) -> String { value.map { fixed($0, 1) + " us" } ?? "-" }

    private func cells(_ values: String...) -> String {
        let widths = [10, 7, 15, 9, 8, 8, 8, 9, 9, 8, 8, 8, 7, 7, 8, 6, 8, 7, 6, 7, 7]
        return zip(values, widths).enumerated().map { index, pair in
            index < 3 ? pair.0.padding(pair.1) : String(repeating: " ", count: max(0, pair.1 - pair.0.count)) + pair.0
        }.joined(separator: " ")
    }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
