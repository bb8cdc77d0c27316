import EDMMClient
import EDMMCore
import EDMMSimHost
import SGXDevice
import SGXSimulator

/// Today's approach, the baseline of `edmm-sim bench`: an enclave runtime that manages its own
/// EDMM in-process, with no daemon, the way Gramine does (its `pal/src/host/linux-sgx/enclave_edmm.c`
/// in the enclave, `host_framework.c` on the host). The enclave picks addresses itself and commits by EACCEPTing each page (each EACCEPT
/// faults and the kernel EAUGs the page); every free is an OCALL for MODIFY_TYPES(TRIM), an
/// EACCEPT per page, and an OCALL for REMOVE_PAGES; every permission change is an OCALL for
/// RESTRICT_PERMISSIONS and an EACCEPT per page (a relax first EMODPEs each page, and Gramine
/// restricts even then); a new thread is an OCALL for MODIFY_TYPES(TCS) and an EACCEPT. Each
/// OCALL runs the host's retry loop (`IoctlRunner`) on the enclave's own descriptor.
///
/// Used from one thread.
final class PerRequestRuntime {
    let machine: SimulatedMachine
    let enclave: SimulatedEnclave
    let cpu: EnclaveCPU
    let managed: PageRange
    /// The enclave's own record: pages it has accepted, with their permissions (TCS pages as such).
    private(set) var pages = RangeMap<HostPage>()
    /// One per OCALL: each operation is its own flush, and each OCALL one run of one ioctl kind.
    private(set) var ioctlLowerBound: UInt64 = 0
    private let runner = IoctlRunner()

    enum Failure: Error, CustomStringConvertible {
        case noAddressSpace(pages: UInt64)
        case notHeld(PageRange)
        case ioctl(EnclaveIoctl, PageRange, IoctlRunResult)
        case instruction(leaf: String, page: UInt64, InstructionOutcome)

        var description: String {
            switch self {
            case .noAddressSpace(let pages): "no free run of \(pages) pages in the enclave"
            case .notHeld(let range): "\(range) is not held by the enclave"
            case .ioctl(let ioctl, let range, let outcome): "\(ioctl) of \(range): \(outcome)"
            case .instruction(let leaf, let page, let outcome): "\(leaf) of page \(page): \(outcome)"
            }
        }
    }

    init(machineFD: Int32, blueprint: EnclaveBlueprint) throws(EnclaveHostError) {
        (machine, enclave, cpu) = try SimulatedEnclaveHost.build(blueprint, machineFD: machineFD)
        managed = blueprint.managedPages
    }

    /// Runs a workload batch, one operation after the other (each pays its own exits), and
    /// records each operation's latency.
    func perform(_ operations: [HostOperation], latency: inout LatencyHistogram) -> [Result<HostOutcome, Failure>] {
        operations.map { operation in
            let start = ContinuousClock.now
            defer { latency.record(ContinuousClock.now - start) }
            do throws(Failure) {
                return .success(try run(operation))
            } catch {
                return .failure(error)
            }
        }
    }

    private func run(_ operation: HostOperation) throws(Failure) -> HostOutcome {
        switch operation {
        case .allocate(let count, _):
            guard let gap = pages.firstGap(ofAtLeast: count, in: managed) else {
                throw .noAddressSpace(pages: count)
            }
            let range = PageRange(first: gap.first, count: count)
            try accept(range, [.pageType(.reg), .pending, .r, .w], leaf: "EACCEPT(REG|PENDING|RW)")
            pages.assign(.inUse(.rw), to: range)
            return .allocated(range, freshPages: count, reusedPages: 0)
        case .allocateAt(let range):
            guard !pages.overlaps(range) else { throw .notHeld(range) }
            try accept(range, [.pageType(.reg), .pending, .r, .w], leaf: "EACCEPT(REG|PENDING|RW)")
            pages.assign(.inUse(.rw), to: range)
            return .allocated(range, freshPages: range.count, reusedPages: 0)
        case .free(let range), .trim(let range):
            try requireHeld(range)
            try ocall(.modifyTypes(.trim), range)
            try accept(range, [.pageType(.trim), .modified], leaf: "EACCEPT(TRIM|MODIFIED)")
            try ocall(.removePages, range)
            pages.remove(range)
        case .restrict(let range, let permissions):
            try requireHeld(range)
            try restrict(range, to: permissions)
        case .relax(let range, let permissions):
            try requireHeld(range)
            let wanted = SecInfoFlags(permissions: permissions)
            for page in range.first..<range.end {
                let outcome = cpu.emodpe(address(page), flags: wanted)
                guard outcome == .success else { throw .instruction(leaf: "EMODPE", page: page, outcome) }
            }
            try restrict(range, to: permissions)
        case .makeTCS(let page):
            let range = PageRange(first: page, count: 1)
            try requireHeld(range)
            try writeTCS(at: page)
            try ocall(.modifyTypes(.tcs), range)
            try accept(range, [.pageType(.tcs), .modified], leaf: "EACCEPT(TCS|MODIFIED)")
            pages.assign(.tcs, to: range)
        }
        return .done(nil)
    }

    private func restrict(_ range: PageRange, to permissions: PagePermissions) throws(Failure) {
        try ocall(.restrictPermissions(permissions), range)
        try accept(range, [.pageType(.reg), .pr, SecInfoFlags(permissions: permissions)], leaf: "EACCEPT(REG|PR)")
        pages.assign(.inUse(permissions), to: range)
    }

    private func requireHeld(_ range: PageRange) throws(Failure) {
        guard pages.covers(range) else { throw .notHeld(range) }
    }

    /// One OCALL: exit, the host's ioctl loop, re-entry.
    private func ocall(_ ioctl: EnclaveIoctl, _ range: PageRange) throws(Failure) {
        ioctlLowerBound += 1
        let outcome = cpu.ocall { runner.run(ioctl, pages: range, on: enclave) }
        guard outcome.errno == 0 else { throw .ioctl(ioctl, range, outcome) }
    }

    private func accept(_ range: PageRange, _ flags: SecInfoFlags, leaf: String) throws(Failure) {
        for page in range.first..<range.end {
            let outcome = cpu.eaccept(address(page), flags: flags)
            guard outcome == .success else { throw .instruction(leaf: leaf, page: page, outcome) }
        }
    }

    /// A valid, inactive TCS with one SSA frame, written as the edmmd host writes it.
    private func writeTCS(at page: UInt64) throws(Failure) {
        var words = [UInt64](repeating: 0, count: 512)
        words[3] = 1 << 32  // CSSA 0, NSSA 1
        words[8] = .max  // FSLIMIT, GSLIMIT
        for (index, word) in words.enumerated() {
            if case .failure(let e) = cpu.write(address(page) + UInt64(index * 8), word) {
                throw .instruction(leaf: "write", page: page, .exception(e))
            }
        }
    }

    private func address(_ page: UInt64) -> UInt64 { enclave.base + page * Page.size }

    /// Pages whose EPCM entry differs from the enclave's record, over the managed range.
    func mismatchedPages() -> UInt64 {
        var mismatched: UInt64 = 0
        var cursor = managed.first
        func expectHoles(until end: UInt64) {
            for page in cursor..<end where enclave.pageInfo(offset: page << Page.shift).state != .hole { mismatched += 1 }
        }
        for entry in pages {
            expectHoles(until: entry.range.first)
            for page in entry.range.first..<entry.range.end {
                let info = enclave.pageInfo(offset: page << Page.shift)
                let ok: Bool
                switch entry.value {
                case .tcs: ok = info.state == .tcs
                case .inUse(let p): ok = (info.state == .reg || info.state == .regPR) && info.permissions == p
                default: ok = false
                }
                if !ok { mismatched += 1 }
            }
            cursor = entry.range.end
        }
        expectHoles(until: managed.end)
        return mismatched
    }
}
