import EDMMClient
import EDMMConfig
import EDMMCore
import EDMMDaemon
import EDMMMetrics
import EDMMProtocol
import EDMMSimHost
import Glibc
import Synchronization
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

    private static func bytes(_ pages: UInt64?) -> Double? { pages.map { Double($0 * 4096) } }

    @Test func everyPerEnclaveSeriesEqualsTheLedgerAtScrapeTimeInBytes() async throws {
        let fixture = try MetricsFixture()
        let hosts = try await busyEnclaves(fixture)
        let connection = try await fixture.connect()
        let exposition = Exposition(fixture.exporter.renderText())
        for host in hosts {
            let stats = try await connection.stats(host.handle)
            let counters = Dictionary(stats.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
            func counter(_ name: String) -> UInt64 { counters[name] ?? 0 }
            let id = ["enclave": host.blueprint.label, "uid": "\(stats.summary.uid)"]
            #expect(
                exposition.value(
                    "edmmd_enclave_info", id.merging(["enclave_id": "\(host.handle)", "label": host.blueprint.label]) { a, _ in a }) == 1)
            #expect(exposition.value("edmmd_enclave_committed_bytes", id) == Self.bytes(stats.summary.committedPages))
            #expect(exposition.value("edmmd_enclave_committed_lower_bound", id) == Double(counter("committed_lower_bound")))
            #expect(exposition.value("edmmd_enclave_lazy_pool_bytes", id) == Self.bytes(counter("pages_pooled")))
            #expect(
                exposition.value("edmmd_enclave_trimming_bytes", id)
                    == Self.bytes(counter("pages_trim_queued") + counter("pages_trimmed") + counter("pages_remove_queued")))
            let epc = ["committed", "pooled", "trim_queued", "trimmed", "remove_queued", "restrict_queued", "tcs_queued", "tcs"]
                .reduce(UInt64(0)) { $0 + counter("pages_\($1)") }
            #expect(exposition.value("edmmd_enclave_epc_bytes", id) == Self.bytes(epc))
            #expect(exposition.values("edmmd_enclave_quota_bytes", id).isEmpty, "no quota configured: no quota series")
            let requests = counters.filter { $0.key.hasPrefix("requests_") }
            #expect(exposition.value("edmmd_enclave_requests_total", id) == Double(requests.values.reduce(0, +)))
            #expect(
                exposition.value("edmmd_enclave_request_failures_total", id)
                    == Double(requests.filter { $0.key.hasSuffix("_failed") }.values.reduce(0, +)))
            let ioctls = ["modify_types", "restrict_permissions", "remove_pages"].reduce(UInt64(0)) { $0 + counter("ioctl_\($1)_calls") }
            #expect(exposition.value("edmmd_enclave_ioctls_total", id) == Double(ioctls))
            #expect(exposition.value("edmmd_enclave_ioctl_errors_total", id) == Double(counter("ioctl_errors")))
            #expect(exposition.value("edmmd_enclave_reclaimed_bytes_total", id) == Self.bytes(counter("reclaimed_pages")))
            #expect(
                exposition.samples.filter { $0.name.hasPrefix("edmmd_enclave_") && $0.labels["enclave"] == host.blueprint.label }.count
                    == 11)
        }
        let status = try await connection.status()
        #expect(exposition.value("edmmd_epc_committed_bytes").map { UInt64($0) } == status.epcCommittedBytes)
        #expect(exposition.value("edmmd_epc_total_bytes").map { UInt64($0) } == status.epcTotalBytes)
        #expect(exposition.value("edmmd_enclaves") == 3)
        #expect(exposition.value("edmmd_uid_enclaves", ["uid": "\(getuid())"]) == 3)
        #expect(exposition.value("edmmd_uid_epc_bytes", ["uid": "\(getuid())"]) == exposition.value("edmmd_epc_committed_bytes"))
        #expect(exposition.value("edmmd_device_info", ["device": "simulated"]) == 1)
        connection.close()
        for host in hosts { host.close() }
        await fixture.stop()
    }

    @Test func machineWideCountersEqualTheDaemonsTalliesAndTheEnclavesSums() async throws {
        let fixture = try MetricsFixture()
        let hosts = try await busyEnclaves(fixture)
        let connection = try await fixture.connect()
        let status = try await connection.status()
        let tallies = Dictionary(status.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        let exposition = Exposition(fixture.exporter.renderText())
        for kind in ["modify_types", "restrict_permissions", "remove_pages"] {
            #expect(exposition.value("edmmd_ioctls_total", ["ioctl": kind]).map { UInt64($0) } == tallies["ioctl_\(kind)_calls"])
        }
        #expect(exposition.values("edmmd_ioctls_total").reduce(0, +) == Double(status.ioctlsTotal))
        #expect(
            exposition.values("edmmd_ioctls_total").reduce(0, +) == exposition.values("edmmd_enclave_ioctls_total").reduce(0, +),
            "every ioctl so far belongs to an enclave still registered")
        #expect(exposition.value("edmmd_epc_lazy_pool_bytes") == exposition.values("edmmd_enclave_lazy_pool_bytes").reduce(0, +))
        #expect(exposition.value("edmmd_epc_trimming_bytes") == exposition.values("edmmd_enclave_trimming_bytes").reduce(0, +))
        #expect(
            exposition.value("edmmd_requests_total", ["verb": "allocate", "result": "ok"]).map { UInt64($0) }
                == tallies["requests_allocate_ok"])
        #expect(
            exposition.value("edmmd_connection_events_total", ["event": "accepted"]).map { UInt64($0) } == tallies["connections_accepted"])
        #expect(exposition.value("edmmd_config_last_reload_successful") == 1)
        #expect(exposition.values("edmmd_fd_store_descriptors").isEmpty, "no FD store: no FD store series")
        connection.close()
        for host in hosts { host.close() }
        await fixture.stop()
    }

    @Test func aRefusalIsCountedUnderItsReasonNotABareFailed() async throws {
        let fixture = try MetricsFixture { $0.quota.enclaveBytes = 32 * 4096 }
        let host = try await fixture.host("capped")
        try await host.allocate(pages: 16)
        await #expect(throws: EnclaveHostError.self) { try await host.allocate(pages: 64) }
        let exposition = Exposition(fixture.exporter.renderText())
        #expect(exposition.value("edmmd_requests_total", ["verb": "allocate", "result": "quota-exceeded"]) == 1)
        #expect(exposition.value("edmmd_requests_total", ["verb": "allocate", "result": "ok"]) == 1)
        #expect(!exposition.samples.contains { $0.labels["result"] == "failed" })
        #expect(exposition.value("edmmd_enclave_request_failures_total", ["enclave": "capped"]) == 1)
        host.close()
        await fixture.stop()
    }

    @Test func theGaugesFollowTheLedgerFromOneScrapeToTheNext() async throws {
        let fixture = try MetricsFixture()
        let host = try await fixture.host("grow")
        let id = ["enclave": "grow"]
        let granted = try await host.allocate(pages: 32)
        #expect(Exposition(fixture.exporter.renderText()).value("edmmd_enclave_committed_bytes", id) == Self.bytes(32))
        _ = try await host.run(.free(PageRange(first: granted.first, count: 12)))
        try await host.sync()
        let after = Exposition(fixture.exporter.renderText())
        #expect(after.value("edmmd_enclave_committed_bytes", id) == Self.bytes(20))
        #expect(after.value("edmmd_enclave_lazy_pool_bytes", id) == Self.bytes(12))
        host.close()
        await fixture.stop()
    }

    @Test func anUnregisteredEnclavesSeriesDisappear() async throws {
        let fixture = try MetricsFixture()
        let staying = try await fixture.host("staying")
        let leaving = try await fixture.host("leaving")
        try await leaving.allocate(pages: 8)
        let before = Exposition(fixture.exporter.renderText())
        #expect(before.samples.contains { $0.labels["enclave"] == "leaving" })
        try await leaving.unregister()
        let text = fixture.exporter.renderText()
        #expect(!text.contains("enclave_id=\"\(leaving.handle)\""))
        #expect(!text.contains("enclave=\"leaving\""))
        #expect(Exposition(text).value("edmmd_enclave_committed_bytes", ["enclave": "staying"]) == 0)
        staying.close()
        await fixture.stop()
    }

    @Test func quotasAreExportedOnlyWhereOneApplies() async throws {
        let fixture = try MetricsFixture {
            $0.quota.enclaveBytes = 256 * 4096
            $0.quota.uidOverrides[getuid()] = 512 * 4096
        }
        let host = try await fixture.host("capped")
        let exposition = Exposition(fixture.exporter.renderText())
        #expect(exposition.value("edmmd_enclave_quota_bytes", ["enclave": "capped"]) == Self.bytes(256))
        #expect(exposition.value("edmmd_quota_limit_bytes", ["quota": "enclave"]) == Self.bytes(256))
        #expect(exposition.values("edmmd_quota_limit_bytes", ["quota": "uid"]).isEmpty, "[quota] uid is unlimited")
        #expect(
            exposition.value("edmmd_quota_limit_bytes", ["quota": "machine"]) == Double(16 << 20), "the machine quota defaults to the EPC")
        #expect(exposition.value("edmmd_uid_quota_bytes", ["uid": "\(getuid())"]) == Self.bytes(512), "the uid's override")
        host.close()
        await fixture.stop()
    }

    @Test func enclavesSharingALabelGetDistinctSeriesThatKeepTheirNames() async throws {
        let fixture = try MetricsFixture()
        let first = try await fixture.host("twin")
        let second = try await fixture.host("twin")
        try await second.allocate(pages: 4)
        let both = Exposition(fixture.exporter.renderText())
        #expect(both.value("edmmd_enclave_committed_bytes", ["enclave": "twin"]) == 0)
        #expect(both.value("edmmd_enclave_committed_bytes", ["enclave": "twin#\(second.handle)"]) == Self.bytes(4))
        #expect(both.value("edmmd_enclave_info", ["enclave": "twin#\(second.handle)", "label": "twin"]) == 1)
        try await first.unregister()
        let after = Exposition(fixture.exporter.renderText())
        #expect(
            after.value("edmmd_enclave_committed_bytes", ["enclave": "twin#\(second.handle)"]) == Self.bytes(4), "its series stay its own")
        #expect(after.values("edmmd_enclave_committed_bytes", ["enclave": "twin"]).isEmpty)
        first.close()
        second.close()
        await fixture.stop()
    }

    @Test func theLabelPolicyHashesOrHidesClientChosenLabels() async throws {
        let secret = "tenant-acme-payroll"
        for policy in [DaemonConfig.EnclaveLabels.hash, .none] {
            let fixture = try MetricsFixture { $0.metrics.enclaveLabels = policy }
            let host = try await fixture.host(secret)
            let text = fixture.exporter.renderText()
            #expect(!text.contains(secret), "\(policy): the label leaks")
            let name = Exposition(text).samples.first { $0.name == "edmmd_enclave_info" }?.labels["enclave"]
            if policy == .none {
                #expect(name == "\(host.handle)")
            } else {
                #expect(name?.count == 16 && name?.allSatisfy(\.isHexDigit) == true)
            }
            host.close()
            await fixture.stop()
        }
    }

    @Test func withoutPerEnclaveSeriesOnlyMachineAndUIDSeriesRemain() async throws {
        let fixture = try MetricsFixture { $0.metrics.perEnclave = false }
        let host = try await fixture.host("hidden")
        try await host.allocate(pages: 8)
        let exposition = Exposition(fixture.exporter.renderText())
        #expect(!exposition.types.keys.contains { $0.hasPrefix("edmmd_enclave_") })
        #expect(!exposition.samples.contains { $0.labels["enclave"] != nil })
        #expect(exposition.value("edmmd_uid_epc_bytes", ["uid": "\(getuid())"]) == exposition.value("edmmd_epc_committed_bytes"))
        host.close()
        await fixture.stop()
    }

    @Test func aViewerThatIsNotAnAdminSeesOnlyItsOwnUIDsSeries() async throws {
        let fixture = try MetricsFixture()
        let host = try await fixture.host("mine")
        let other = Exposition(fixture.exporter.renderText(for: .peer(PeerCredentials(pid: 1, uid: getuid() &+ 1, gid: 0))))
        #expect(!other.samples.contains { $0.labels["uid"] != nil }, "another uid sees no enclave or uid series")
        #expect(other.value("edmmd_enclaves") == 1, "the machine-wide series stay (STATUS shows them to everyone)")
        let own = Exposition(fixture.exporter.renderText(for: .peer(PeerCredentials(pid: 1, uid: getuid(), gid: getgid()))))
        #expect(own.value("edmmd_enclave_info", ["enclave": "mine"]) == 1)
        host.close()
        await fixture.stop()
    }

    @Test func theLastReloadsResultAndTimeAreExported() async throws {
        let path = "/tmp/edmm-metrics-reload-\(getpid()).toml"
        defer { unlink(path) }
        func write(_ text: String) {
            let file = fopen(path, "w")
            fputs(text, file)
            fclose(file)
        }
        write("[pool]\nthreshold_percent = 50\n")
        let fixture = try MetricsFixture(wire: { $0.configSource = ConfigSource(path: path, explicit: true) })
        let started = try #require(Exposition(fixture.exporter.renderText()).value("edmmd_config_last_reload_success_timestamp_seconds"))
        #expect(abs(started - WallClock.seconds) < 60)
        write("[pool]\nthreshold_percent = 500\n")
        #expect((try? fixture.daemon.reload()) == nil)
        let refused = Exposition(fixture.exporter.renderText())
        #expect(refused.value("edmmd_config_last_reload_successful") == 0)
        #expect(refused.value("edmmd_config_last_reload_success_timestamp_seconds") == started)
        write("[pool]\nthreshold_percent = 40\n")
        #expect((try? fixture.daemon.reload()) != nil)
        let applied = Exposition(fixture.exporter.renderText())
        #expect(applied.value("edmmd_config_last_reload_successful") == 1)
        #expect((applied.value("edmmd_config_last_reload_success_timestamp_seconds") ?? 0) > started)
        await fixture.stop()
    }

    /// An FD store that only remembers names, to count what edmmd keeps there.
    final class NamesStore: DescriptorStore {
        let names = Mutex<Set<String>>([])
        func store(_ fd: Int32, name: String) -> Bool {
            names.withLock { _ = $0.insert(name) }
            return true
        }
        func remove(name: String) { names.withLock { _ = $0.remove(name) } }
    }

    @Test func theFDStoreSeriesCountWhatIsStoredAndWhenTheStateWasWritten() async throws {
        let store = NamesStore()
        let fixture = try MetricsFixture(wire: { $0.descriptorStore = store })
        let hosts = [try await fixture.host("kept-1"), try await fixture.host("kept-2")]
        try await hosts[1].unregister()
        var exposition = Exposition(fixture.exporter.renderText())
        let stored = store.names.withLock { $0.count }
        #expect(exposition.value("edmmd_fd_store_descriptors") == Double(stored))
        #expect(exposition.value("edmmd_fd_store_descriptors") == 4, "two state slots, the simulated EPC, one enclave")
        for _ in 0..<50 where exposition.values("edmmd_fd_store_last_write_timestamp_seconds").isEmpty {
            try await Task.sleep(for: .milliseconds(20))
            exposition = Exposition(fixture.exporter.renderText())
        }
        let written = try #require(exposition.value("edmmd_fd_store_last_write_timestamp_seconds"))
        #expect(abs(written - WallClock.seconds) < 60)
        #expect(exposition.value("edmmd_fd_store_write_failures_total") == 0)
        for host in hosts { host.close() }
        await fixture.stop()
    }

    @Test func theProcessFiguresAreEdmmdsOwn() async throws {
        let fixture = try MetricsFixture()
        let first = Exposition(fixture.exporter.renderText())
        let open = try #require(first.value("process_open_fds"))
        let max = try #require(first.value("process_max_fds"))
        #expect(open > 3 && open < max)
        #expect((first.value("process_resident_memory_bytes") ?? 0) > Double(1 << 20))
        let started = try #require(first.value("process_start_time_seconds"))
        #expect(started <= WallClock.seconds && started > WallClock.seconds - 3600)
        var spin = 0.0
        for i in 0..<3_000_000 { spin += Double(i).squareRoot() }
        #expect(spin > 0)
        let second = Exposition(fixture.exporter.renderText())
        #expect(second.value("process_start_time_seconds") == started, "the start time never moves")
        #expect((second.value("process_cpu_seconds_total") ?? 0) >= (first.value("process_cpu_seconds_total") ?? .infinity))
        await fixture.stop()
    }

    @Test func theLatencyHistogramCountsEveryAnsweredRequestAndTheBatchHistogramEveryFlush() async throws {
        let fixture = try MetricsFixture()
        let host = try await fixture.host("timed")
        for _ in 0..<5 { try await host.allocate(pages: 4) }
        let granted = try await host.allocate(pages: 16)
        _ = try await host.run(.trim(granted))
        try await host.sync()
        let connection = try await fixture.connect()
        let flushes = try await connection.stats(host.handle).counters.first { $0.name == "flushes" }?.value
        let exposition = Exposition(fixture.exporter.renderText())
        for verb in ["allocate", "trim", "trim_accepted", "sync", "register", "hello"] {
            let answered = exposition.values("edmmd_requests_total", ["verb": verb]).reduce(0, +)
            #expect(answered > 0)
            #expect(exposition.value("edmmd_request_duration_seconds_count", ["verb": verb]) == answered, "verb \(verb)")
        }
        #expect((flushes ?? 0) > 0)
        #expect(exposition.value("edmmd_flush_requests_count") == flushes.map { Double($0) })
        #expect(exposition.value("edmmd_ioctl_pages_sum", ["ioctl": "modify_types"]) == 16)
        connection.close()
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
        #expect(overSocket.value("edmmd_enclave_info", ["enclave_id": "\(host.handle)"]) == 1, "root sees every enclave")
        #expect(overSocket.types.keys.allSatisfy { overSocket.helps.contains($0) }, "every family has HELP")
        connection.close()
        host.close()
        await fixture.stop()
    }

    @Test func everyFamilyOfTheCatalogIsNamedInEveryScrapeWithItsType() async throws {
        let fixture = try MetricsFixture()
        let host = try await fixture.host("typed")
        try await host.allocate(pages: 4)
        try await host.sync()
        let exposition = Exposition(fixture.exporter.renderText())
        for spec in MetricCatalog.all {
            #expect(exposition.types[spec.name] == spec.kind.rawValue, "\(spec.name)")
        }
        #expect(Set(exposition.types.keys) == Set(MetricCatalog.all.map(\.name)), "no family outside the catalog")
        for sample in exposition.samples {
            let family = MetricCatalog.all.first {
                sample.name == $0.name || ($0.kind == .histogram && sample.name.hasPrefix($0.name + "_"))
            }
            let spec = try #require(family, "\(sample.name)")
            #expect(Set(sample.labels.keys).subtracting(["le"]).isSubset(of: Set(spec.labels)), "\(sample.name) \(sample.labels)")
        }
        host.close()
        await fixture.stop()
    }

    /// docs/observability.md lists every family with its labels: a row per metric.
    @Test func theDocumentationListsEveryFamilyWithItsLabels() throws {
        let fd = open(packageRoot(of: #filePath) + "/docs/observability.md", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while case let n = read(fd, &chunk, chunk.count), n > 0 { bytes += chunk[..<n] }
        let text = String(decoding: bytes, as: UTF8.self)
        for spec in MetricCatalog.all {
            let row = text.split(separator: "\n").first { $0.hasPrefix("| `\(spec.name)") }
            let found = try #require(row, "docs/observability.md has no row for \(spec.name)")
            for label in spec.labels { #expect(found.contains(label), "\(spec.name): label \(label) not in its row") }
            #expect(found.contains("| \(spec.kind.rawValue) |"), "\(spec.name): type")
        }
    }
}

/// The package's root, from a test file's path (Tests/<target>/<file>).
func packageRoot(of file: String) -> String {
    var parts = file.split(separator: "/", omittingEmptySubsequences: false)
    while let last = parts.last, last != "Tests" { parts.removeLast() }
    parts.removeLast()
    return parts.joined(separator: "/")
}
