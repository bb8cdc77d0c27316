import EDMMClient
import EDMMSimHost
import EDMMCore
import EDMMDaemon
import EDMMMetrics
import EDMMProtocol
import Testing

/// The exposition is read from the daemon's snapshot at scrape time: its gauges equal the ledger,
/// its counters the daemon's tallies, and a gone enclave leaves no series.
@Suite struct ExpositionTests {
    /// Three enclaves in different states: pages committed, pooled, trimmed, made TCS, restricted.
    private func busyEnclaves(_ fixture: MetricsFixture) async throws -> [SimulatedEnclaveHost] {
        let hosts = [try await fixture.host("web"), try await fixture.host("batch"), try await fixture.host("idle")]
        let web = try await hosts[0].allocate(pages: 64)
        _ = try await hosts[0].run(.free(PageRange(first: web.first, count: 16)))
        _ = try await hosts[0].run(.trim(PageRange(first: web.first + 16, count: 8)))
        _ = try await hosts[0].run(.makeTCS(page: web.first + 30))
        let batch = try await hosts[1].allocate(pages: 200)
        _ = try await hosts[1].run(.restrict(PageRange(first: batch.first, count: 10), to: .read))
        _ = try await hosts[1].run(.free(PageRange(first: batch.first + 100, count: 50)))
        for host in hosts { try await host.sync() }
        return hosts
    }

    @Test func everyPerEnclaveGaugeEqualsTheLedgerAtScrapeTime() async throws {
        let fixture = try MetricsFixture()
        let hosts = try await busyEnclaves(fixture)
        let connection = try await fixture.connect()
        let exposition = Exposition(fixture.exporter.renderText())
        for host in hosts {
            let stats = try await connection.stats(host.handle)
            let counters = Dictionary(stats.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
            let id = ["enclave_id": "\(host.handle)", "enclave": host.blueprint.label, "uid": "\(stats.summary.uid)"]
            func gauge(_ name: String, _ extra: [String: String] = [:]) -> UInt64? {
                exposition.value(name, id.merging(extra) { a, _ in a }).map { UInt64($0) }
            }
            #expect(gauge("edmmd_enclave_committed_pages") == stats.summary.committedPages)
            #expect(gauge("edmmd_enclave_lazy_pool_pages") == counters["pages_pooled"])
            #expect(gauge("edmmd_enclave_trimming_pages") == counters["pages_trim_queued"].map { $0 + (counters["pages_trimmed"] ?? 0) })
            #expect(gauge("edmmd_enclave_removing_pages") == counters["pages_remove_queued"])
            #expect(gauge("edmmd_enclave_tcs_pages") == counters["pages_tcs"])
            #expect(gauge("edmmd_enclave_size_bytes") == stats.summary.size)
            let epc = ["committed", "pooled", "trim_queued", "trimmed", "remove_queued", "restrict_queued", "tcs_queued", "tcs"]
                .reduce(UInt64(0)) { $0 + (counters["pages_\($1)"] ?? 0) }
            #expect(gauge("edmmd_enclave_epc_pages") == epc)
            #expect(exposition.values("edmmd_enclave_quota_pages", id).isEmpty, "no quota configured: no quota series")
            for verb in ["allocate", "free", "trim", "trim_accepted", "restrict", "make_tcs", "sync"] {
                for result in ["ok", "failed"] {
                    #expect(gauge("edmmd_enclave_requests_total", ["verb": verb, "result": result]) == counters["requests_\(verb)_\(result)"])
                }
            }
            for kind in ["modify_types", "restrict_permissions", "remove_pages"] {
                #expect(gauge("edmmd_enclave_ioctls_total", ["ioctl": kind]) == counters["ioctl_\(kind)_calls"])
                #expect(gauge("edmmd_enclave_ioctl_pages_total", ["ioctl": kind]) == counters["ioctl_\(kind)_pages"])
            }
            #expect(gauge("edmmd_enclave_flushes_total") == counters["flushes"])
            #expect(gauge("edmmd_enclave_ioctl_errors_total") == counters["ioctl_errors"])
            for errno in ["EBUSY", "EAGAIN", "EINTR"] {
                #expect(gauge("edmmd_enclave_ioctl_retries_total", ["errno": errno]) == counters["retries_\(errno.lowercased())"])
            }
        }
        let status = try await connection.status()
        #expect(exposition.value("edmmd_epc_committed_bytes").map { UInt64($0) } == status.epcCommittedBytes)
        #expect(exposition.value("edmmd_epc_total_bytes").map { UInt64($0) } == status.epcTotalBytes)
        #expect(exposition.value("edmmd_enclaves") == 3)
        #expect(exposition.value("edmmd_device_info", ["device": "simulated"]) == 1)
        connection.close()
        for host in hosts { host.close() }
        await fixture.stop()
    }

    @Test func theGaugesFollowTheLedgerFromOneScrapeToTheNext() async throws {
        let fixture = try MetricsFixture()
        let host = try await fixture.host("grow")
        let id = ["enclave_id": "\(host.handle)"]
        let granted = try await host.allocate(pages: 32)
        #expect(Exposition(fixture.exporter.renderText()).value("edmmd_enclave_committed_pages", id) == 32)
        _ = try await host.run(.free(PageRange(first: granted.first, count: 12)))
        try await host.sync()
        let after = Exposition(fixture.exporter.renderText())
        #expect(after.value("edmmd_enclave_committed_pages", id) == 20)
        #expect(after.value("edmmd_enclave_lazy_pool_pages", id) == 12)
        host.close()
        await fixture.stop()
    }

    @Test func anUnregisteredEnclavesSeriesDisappear() async throws {
        let fixture = try MetricsFixture()
        let staying = try await fixture.host("staying")
        let leaving = try await fixture.host("leaving")
        try await leaving.allocate(pages: 8)
        let before = Exposition(fixture.exporter.renderText())
        #expect(before.samples.contains { $0.labels["enclave_id"] == "\(leaving.handle)" })
        try await leaving.unregister()
        let text = fixture.exporter.renderText()
        #expect(!text.contains("enclave_id=\"\(leaving.handle)\""))
        #expect(!text.contains("enclave=\"leaving\""))
        #expect(Exposition(text).value("edmmd_enclave_committed_pages", ["enclave_id": "\(staying.handle)"]) == 0)
        staying.close()
        await fixture.stop()
    }

    @Test func aQuotaIsExportedOnlyWhenOneApplies() async throws {
        let fixture = try MetricsFixture { $0.quota.enclaveBytes = 256 * 4096 }
        let host = try await fixture.host("capped")
        let exposition = Exposition(fixture.exporter.renderText())
        #expect(exposition.value("edmmd_enclave_quota_pages", ["enclave_id": "\(host.handle)"]) == 256)
        host.close()
        await fixture.stop()
    }

    @Test func theLatencyHistogramCountsEveryAnsweredRequestAndTheBatchHistogramEveryFlush() async throws {
        let fixture = try MetricsFixture()
        let host = try await fixture.host("timed")
        for _ in 0..<5 { try await host.allocate(pages: 4) }
        let granted = try await host.allocate(pages: 16)
        _ = try await host.run(.trim(granted))
        try await host.sync()
        let exposition = Exposition(fixture.exporter.renderText())
        for verb in ["allocate", "trim", "trim_accepted", "sync", "register", "hello"] {
            let answered = exposition.values("edmmd_requests_total", ["verb": verb]).reduce(0, +)
            #expect(answered > 0)
            #expect(exposition.value("edmmd_request_duration_seconds_count", ["verb": verb]) == answered, "verb \(verb)")
        }
        let flushes = exposition.value("edmmd_enclave_flushes_total", ["enclave_id": "\(host.handle)"])
        #expect(flushes.map { $0 > 0 } == true)
        #expect(exposition.value("edmmd_flush_requests_count") == flushes)
        let trimPages = exposition.value("edmmd_ioctl_pages_sum", ["ioctl": "modify_types"])
        #expect(trimPages == 16)
        host.close()
        await fixture.stop()
    }

    @Test func theMETRICSVerbServesTheSameFamiliesAsTheExporter() async throws {
        let fixture = try MetricsFixture()
        let host = try await fixture.host("verb")
        let connection = try await fixture.connect()
        let overSocket = Exposition(try await connection.metricsText())
        let direct = Exposition(fixture.exporter.renderText())
        #expect(Set(overSocket.types.keys) == Set(direct.types.keys))
        #expect(overSocket.value("edmmd_enclave_size_bytes", ["enclave_id": "\(host.handle)"]) == Double(1 << 26))
        #expect(overSocket.types.keys.allSatisfy { overSocket.helps.contains($0) }, "every family has HELP")
        connection.close()
        host.close()
        await fixture.stop()
    }
}
