import CEDMMShims
import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import Testing

/// A simulated EPC region mapped the way a hostile client maps it: from its descriptor and the
/// C layout in `edmm_shm.h` alone, to write whatever it likes.
final class ShmRegion {
    let base: UnsafeMutableRawPointer
    let length: Int

    init(fd: Int32, length: Int) throws {
        guard let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            throw SpawnFailure.system("mmap", errno)
        }
        base = mapped
        self.length = length
    }

    /// The machine region: its header's own size field says how far to map.
    convenience init(machine fd: Int32) throws {
        var header = edmm_machine_header()
        _ = withUnsafeMutableBytes(of: &header) { pread(fd, $0.baseAddress, $0.count, 0) }
        try self.init(fd: fd, length: Int(header.region_size))
    }

    /// The metadata of an enclave region.
    convenience init(enclave fd: Int32) throws {
        var header = edmm_enclave_header()
        _ = withUnsafeMutableBytes(of: &header) { pread(fd, $0.baseAddress, $0.count, 0) }
        try self.init(fd: fd, length: Int(header.metadata_size))
    }

    deinit { munmap(base, length) }

    var machine: UnsafeMutablePointer<edmm_machine_header> { base.assumingMemoryBound(to: edmm_machine_header.self) }
    var enclave: UnsafeMutablePointer<edmm_enclave_header> { base.assumingMemoryBound(to: edmm_enclave_header.self) }

    /// The machine's enclave table.
    var records: UnsafeMutableBufferPointer<edmm_enclave_record> {
        let h = machine.pointee
        return UnsafeMutableBufferPointer(
            start: (base + Int(h.enclaves_offset)).assumingMemoryBound(to: edmm_enclave_record.self), count: Int(h.enclave_capacity))
    }

    /// Every counter of an enclave region.
    func setEnclaveCounters(_ value: UInt64) {
        withUnsafeMutablePointer(to: &enclave.pointee.counters) {
            $0.withMemoryRebound(to: UInt64.self, capacity: Int(EDMM_COUNTER_SLOTS)) { counters in
                for slot in 0..<Int(EDMM_COUNTER_SLOTS) { counters[slot] = value }
            }
        }
    }
}

extension EndToEnd {
    /// Every number edmmd reads from the simulated EPC's shared memory is client-writable input:
    /// hostile values there must never stop the daemon or make its figures absurd. Before, 2^52
    /// used pages or more made STATUS, METRICS and a /metrics scrape trap on `* 4096` (issue 10).
    @Suite struct HostileSharedMemory {
        static let values: [UInt64] = [1 << 52, 1 << 62, UInt64.max]

        @Test func hostileCountersInTheSimulatedEPCLeaveTheDaemonUpWithSaneFigures() async throws {
            let curl = try requireTool("/usr/bin/curl")
            let port = try freeLoopbackPort()
            let daemon = try DaemonProcess(flags: ["--metrics", "127.0.0.1:\(port)"], epcSize: "8MiB")
            let host = try await daemon.host("victim")
            let granted = try await host.allocate(pages: 64)
            _ = try await host.run(.free(PageRange(first: granted.first, count: 16)))
            try await host.sync()
            let observer = try await daemon.connect()
            let machine = try ShmRegion(machine: try #require(observer.machineDescriptor))
            let region = try ShmRegion(enclave: host.enclave.fd)
            let epcBytes = UInt64(8 << 20)

            for value in Self.values {
                let h = machine.machine
                (h.pointee.used_pages, h.pointee.ewb, h.pointee.eldu) = (value, value, value)
                (h.pointee.sweeps, h.pointee.lock_recoveries, h.pointee.ewb_at_last_sweep) = (value, value, value)
                for i in machine.records.indices {
                    machine.records[i].resident_pages = value
                    machine.records[i].ewb = value
                    machine.records[i].attached_count = UInt32(truncatingIfNeeded: value)
                    machine.records[i].mapped_count = UInt32(truncatingIfNeeded: value)
                }
                region.enclave.pointee.present_pages = value
                region.setEnclaveCounters(value)

                let status = try await observer.status()
                #expect(status.epcResidentBytes <= status.epcTotalBytes, "value \(value)")
                #expect(status.epcTotalBytes == epcBytes)
                #expect((status.counters.first { $0.name == "sim_used_pages" }?.value ?? .max) <= epcBytes / 4096)
                let stats = try await observer.stats(host.handle)
                #expect((stats.counters.first { $0.name == "sim_resident_pages" }?.value ?? .max) <= epcBytes / 4096)
                let text = try await observer.metricsText()
                #expect(text.contains("edmmd_epc_used_bytes"))
                let log = daemon.directory.path + "/curl.log"
                let (scraped, body) = try runToCompletion(curl, ["-sS", "-f", "http://127.0.0.1:\(port)/metrics"], stderrPath: log)
                #expect(scraped == 0, "value \(value): \(readFile(log) ?? "")")
                #expect(body.contains("edmmd_epc_used_bytes"))

                // Work that makes edmmd's own simulator code count: EMODT of pool pages, a new
                // enclave attached by the daemon, and the supervisor's sweep (once a second).
                _ = try await observer.reclaim()
                let newcomer = try await daemon.host("newcomer-\(value)")
                try await Task.sleep(for: .milliseconds(1200))
                try await newcomer.unregister()
            }
            #expect(daemon.isRunning, "edmmd died; its log: \(daemon.log)")
            #expect(try await observer.status().enclaves == 1)
            host.close()
            #expect(daemon.stop() == 0)
        }
    }
}
