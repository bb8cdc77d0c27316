import EDMMClient
import EDMMCore
import EDMMProtocol
import Testing

extension EndToEnd {
    @Suite struct Pressure {
        /// A 16 MiB EPC (4096 pages): pressure from 90 % (3686 pages) down to 75 % (3072). The
        /// idle enclave's pool (512 pages) is smaller than the first deficit (at least 614), so
        /// it must be emptied before the busy enclave gives anything.
        @Test func pressureReclaimEmptiesIdlePoolsFirst() async throws {
            let daemon = try DaemonProcess(
                config: "[pool]\nthreshold_percent = 100\n[pressure]\nhigh_watermark_percent = 90\nlow_watermark_percent = 75\n",
                epcSize: "16MiB")
            let idle = try await daemon.host("idle")
            defer { idle.close() }
            let busy = try await daemon.host("busy")
            defer { busy.close() }
            let grower = try await daemon.host("grower")
            defer { grower.close() }

            _ = try await idle.run(.free(try await idle.allocate(pages: 512)))
            let busyHeap = try await busy.allocate(pages: 1536)
            _ = try await busy.run(.free(PageRange(first: busyHeap.first, count: 1024)))
            for _ in 0..<33 { try await grower.allocate(pages: 50) }

            let observer = try await daemon.connect()
            defer { observer.close() }
            var pools: [String: UInt64] = [:]
            for _ in 0..<1200 {
                let status = try await observer.status()
                pools = Dictionary(uniqueKeysWithValues: try await observer.allEnclaves().map { ($0.label, $0.pooledPages) })
                if !status.underPressure && pools["idle"] == 0 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(pools["idle"] == 0)
            #expect((pools["busy"] ?? 0) > 0)
            #expect(idle.stats.reclaimedPages == 512)
            #expect(busy.stats.reclaimedPages < 1024)
            await expectLedgersMatch([idle, busy, grower])
            #expect(daemon.stop() == 0)
        }
    }
}
