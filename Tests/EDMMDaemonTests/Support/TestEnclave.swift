import EDMMCore
import EDMMProtocol
import Glibc
import SGXDevice
import SGXSimulator

/// A simulated enclave as an enclave host builds it: ECREATE in the daemon's machine, EINIT, the
/// whole ELRANGE mapped RW, and a simulated CPU to EACCEPT with.
final class TestEnclave {
    let enclave: SimulatedEnclave
    let cpu: EnclaveCPU

    init(machine: SimulatedMachine, base: UInt64 = 1 << 32, size: UInt64 = 1 << 24) throws {
        enclave = try SimulatedEnclave.create(machine: machine, base: base, size: size)
        guard enclave.initialize() == 0 else { throw TestClient.Failure.unexpected("EINIT failed") }
        guard enclave.mmap(address: base, length: size, protection: .rw) == 0 else {
            throw TestClient.Failure.unexpected("mmap failed")
        }
        cpu = try enclave.cpu()
    }

    var fd: Int32 { enclave.fd }
    var base: UInt64 { enclave.base }
    var size: UInt64 { enclave.size }

    func registerRequest(label: String = "test", preheatPages: UInt64 = 0, managed: WireRange = WireRange(offset: 0, length: 0))
        -> Request
    {
        .register(RegisterRequest(base: base, size: size, label: label, preheatPages: preheatPages, managed: managed))
    }

    /// EACCEPTs every page of `ranges` with `flags`; returns the pages that did not return 0.
    @discardableResult
    func accept(_ ranges: [WireRange], _ flags: SecInfoFlags) -> Int {
        var failures = 0
        for range in ranges {
            for offset in stride(from: range.offset, to: range.offset + range.length, by: Int(Page.size)) {
                if cpu.eaccept(base + offset, flags: flags) != .success { failures += 1 }
            }
        }
        return failures
    }

    @discardableResult func acceptFresh(_ ranges: [WireRange]) -> Int { accept(ranges, [.pageType(.reg), .pending, .r, .w]) }
    @discardableResult func acceptTrim(_ ranges: [WireRange]) -> Int { accept(ranges, [.pageType(.trim), .modified]) }
    @discardableResult func acceptRestrict(_ ranges: [WireRange], _ permissions: PagePermissions) -> Int {
        accept(ranges, [.pageType(.reg), .pr, SecInfoFlags(permissions: permissions)])
    }
}

extension TestClient {
    /// Registers `enclave` over this connection and returns its handle.
    func register(_ enclave: TestEnclave, label: String = "test", preheatPages: UInt64 = 0) throws -> (EnclaveHandle, RegisterReply) {
        guard
            case .register(let reply) = try expect(
                enclave.registerRequest(label: label, preheatPages: preheatPages), descriptors: [enclave.fd])
        else { throw Failure.unexpected("not a register reply") }
        return (reply.enclave, reply)
    }

    /// Registers `enclave` over this connection and has it accept a fresh grant of `pages` pages:
    /// an enclave with committed pages that a TRIM (and so a flush) can work on.
    func registerWithAcceptedPages(_ enclave: TestEnclave, pages: UInt64 = 8) throws -> (EnclaveHandle, AllocateReply) {
        let (handle, _) = try register(enclave)
        let grant = try allocate(AllocateRequest(enclave: handle, length: pages * Page.size))
        enclave.acceptFresh(grant.fresh)
        return (handle, grant)
    }
}

func pages(_ first: UInt64, _ count: UInt64) -> WireRange {
    WireRange(offset: first * Page.size, length: count * Page.size)
}
