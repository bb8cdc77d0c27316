import FoundationEssentials
import Testing

extension EndToEnd {
    /// `edmm-sim bench`'s rows: the ioctl lower bound and the static baseline, from its JSON.
    @Suite struct BenchRows {
        struct Row: Decodable {
            var approach: String
            var ioctls: UInt64
            var ioctlLowerBound: UInt64?
            var exits: UInt64
            var cycles: UInt64
            var loadCycles: UInt64
            var peakCommittedPages: UInt64
            var ledgerMatchesEpcm: Bool
        }

        struct Report: Decodable {
            var rows: [Row]
        }

        @Test func everyRowReportsItsIoctlLowerBoundAndStaticPaysOnlyAtLoad() async throws {
            let (status, output) = try runToCompletion(
                try Products.path("edmm-sim"),
                [
                    "bench", "--json", "--phases", "rows", "--workloads", "gc", "--clients", "2", "--batches", "20",
                    "--approaches", "per-request,static,edmmd-unbatched,edmmd-full",
                ],
                stderrPath: "/dev/null")
            // 2: targets this partial run did not measure; 1 would be a row that did not complete.
            #expect(status == 0 || status == 2, "bench failed: \(output.prefix(2000))")
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let report = try decoder.decode(Report.self, from: Data(output.utf8))
            let rows = Dictionary(uniqueKeysWithValues: report.rows.map { ($0.approach, $0) })
            let perRequest = try #require(rows["per-request"])
            let fixedHeap = try #require(rows["static"])
            let unbatched = try #require(rows["edmmd-unbatched"])
            let full = try #require(rows["edmmd-full"])
            #expect(report.rows.allSatisfy { $0.ledgerMatchesEpcm })
            // One OCALL per run: per-request's ioctls are its bound (no EBUSY: one thread per enclave).
            #expect(perRequest.ioctls == perRequest.ioctlLowerBound)
            // The bound comes from edmmd's flushes; no flush runs fewer ioctls than its runs.
            for row in [unbatched, full] {
                let bound = try #require(row.ioctlLowerBound)
                #expect(bound > 0)
                #expect(row.ioctls >= bound)
            }
            // static: the peak heap built at load at the EADD (+ EEXTEND) price, nothing afterwards.
            #expect(fixedHeap.ioctls == 0 && fixedHeap.exits == 0 && fixedHeap.cycles == 0)
            #expect(fixedHeap.ioctlLowerBound == 0)
            #expect(fixedHeap.peakCommittedPages > 0)
            #expect(fixedHeap.loadCycles == fixedHeap.peakCommittedPages * 21_000)
            #expect(perRequest.loadCycles == 0 && perRequest.peakCommittedPages > 0)
        }
    }
}
