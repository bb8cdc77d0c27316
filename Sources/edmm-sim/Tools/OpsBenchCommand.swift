import ArgumentParser
import Glibc
import SGXDevice
import SGXSimulator

/// `edmm-sim sim-ops-bench`: wall-clock cost of the simulator's per-page operations (build with
/// `-c release`). A measurement of the simulator itself, not of SGX.
struct OpsBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim-ops-bench", abstract: "Measure the simulator's per-page operation costs.", shouldDisplay: false)

    @Option(help: "Pages per phase.")
    var pages: UInt64 = 65536

    @Option(help: "Instead: register this many 1 TiB enclaves metadata-only (as the daemon maps them) and report RSS.")
    var registered: Int?

    func run() throws {
        if let registered { return try measureRegistration(registered) }
        let machine = try SimulatedMachine.create(.init(epcPages: pages * 2, enclaveCapacity: 4))
        var size: UInt64 = 4096
        while size < pages * 4096 * 2 { size <<= 1 }
        let enclave = try SimulatedEnclave.create(machine: machine, base: size, size: size)
        _ = enclave.initialize()
        _ = enclave.mmap(address: size, length: size, protection: .rw)
        let cpu = try enclave.cpu()
        let base = enclave.base
        let n = pages
        func measure(_ label: String, count: UInt64, _ body: () -> Void) {
            var t0 = timespec()
            var t1 = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t0)
            body()
            clock_gettime(CLOCK_MONOTONIC, &t1)
            let ns = Double(t1.tv_sec - t0.tv_sec) * 1e9 + Double(t1.tv_nsec - t0.tv_nsec)
            let perPage = Int((ns / Double(count)).rounded())
            print(label + String(repeating: " ", count: max(1, 50 - label.count)) + "\(perPage) ns/page")
        }
        var failures = 0
        measure("EACCEPT of a hole (fault, EAUG, EACCEPT)", count: n) {
            for p in 0..<n where cpu.eaccept(base + p * 4096, flags: [.pageType(.reg), .pending, .r, .w]) != .success {
                failures += 1
            }
        }
        measure("first write u64 (host allocates the memfd page)", count: n) {
            for p in 0..<n { if case .failure = cpu.write(base + p * 4096, p) { failures += 1 } }
        }
        measure("write u64", count: n) {
            for p in 0..<n { if case .failure = cpu.write(base + p * 4096 + 8, p) { failures += 1 } }
        }
        measure("read u64 (PTE present)", count: n) {
            for p in 0..<n { if case .failure = cpu.read(base + p * 4096) { failures += 1 } }
        }
        measure("RESTRICT_PERMISSIONS(RW), one ioctl", count: n) {
            var r = RestrictPermissionsParams(offset: 0, length: n * 4096, permissions: 3)
            if enclave.restrictPermissions(&r) != 0 { failures += 1 }
        }
        measure("EACCEPT(REG|PR|RW)", count: n) {
            for p in 0..<n where cpu.eaccept(base + p * 4096, flags: [.pageType(.reg), .pr, .r, .w]) != .success {
                failures += 1
            }
        }
        measure("MODIFY_TYPES(TRIM), one ioctl", count: n) {
            var m = ModifyTypesParams(offset: 0, length: n * 4096, pageType: 4)
            if enclave.modifyTypes(&m) != 0 { failures += 1 }
        }
        measure("EACCEPT(TRIM|MODIFIED)", count: n) {
            for p in 0..<n where cpu.eaccept(base + p * 4096, flags: [.pageType(.trim), .modified]) != .success {
                failures += 1
            }
        }
        measure("REMOVE_PAGES, one ioctl (punches holes)", count: n) {
            var r = RemovePagesParams(offset: 0, length: n * 4096)
            if enclave.removePages(&r) != 0 { failures += 1 }
        }
        // Oversubscribed: an EPC of a quarter of the working set; every read reloads (ELDU) and
        // evicts (EWB).
        let small = try SimulatedMachine.create(.init(epcPages: n / 4, enclaveCapacity: 4))
        let pressured = try SimulatedEnclave.create(machine: small, base: size, size: size)
        _ = pressured.initialize()
        _ = pressured.mmap(address: size, length: size, protection: .rw)
        let pcpu = try pressured.cpu()
        for p in 0..<n {
            _ = pcpu.eaccept(size + p * 4096, flags: [.pageType(.reg), .pending, .r, .w])
            _ = pcpu.write(size + p * 4096, p)
        }
        measure("read u64, EPC = 1/4 of working set (ELDU+EWB)", count: n) {
            for p in 0..<n { if case .failure = pcpu.read(size + p * 4096) { failures += 1 } }
        }
        print("failures: \(failures), EWB \(small.stats.ewb), ELDU \(small.stats.eldu)")
    }

    /// RSS of this process after holding `count` mostly empty 1 TiB enclaves, each with one
    /// accepted page, mapped metadata-only the way the daemon maps the enclaves it manages.
    private func measureRegistration(_ count: Int) throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 1 << 20, enclaveCapacity: UInt32(count)))
        let before = residentBytes()
        var enclaves: [SimulatedEnclave] = []
        let size: UInt64 = 1 << 40
        for _ in 0..<count {
            let enclave = try SimulatedEnclave.create(machine: machine, base: size, size: size, mapContents: false)
            _ = enclave.initialize()
            var p = ModifyTypesParams(offset: 0, length: 4096, pageType: 4)
            _ = enclave.modifyTypes(&p)  // one ioctl: touches the header and one leaf lookup
            enclaves.append(enclave)
        }
        let after = residentBytes()
        print(
            "\(count) enclaves of 1 TiB, metadata-only: RSS \(before / 1024) KiB -> \(after / 1024) KiB (+\((after - before) / 1024) KiB)")
    }

    private func residentBytes() -> Int {
        guard let f = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(f) }
        var pages = 0
        var resident = 0
        _ = withUnsafeMutablePointer(to: &pages) { p in
            withUnsafeMutablePointer(to: &resident) { r in
                withVaList([p, r]) { vfscanf(f, "%ld %ld", $0) }
            }
        }
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
