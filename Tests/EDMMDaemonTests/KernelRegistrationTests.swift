import EDMMConfig
import EDMMDaemon
import EDMMProtocol
import Glibc
import SGXDevice
import SGXKernel
import Testing

/// The kernel path of REGISTER without SGX hardware: the daemon runs on the "kernel" device with
/// `/dev/null` standing in for `/dev/sgx_enclave`. That is faithful where it matters here: every
/// open(2) of the SGX device is a new open file with an enclave of its own, while dup(2) and
/// SCM_RIGHTS give more descriptors of the same one; and REGISTER of a kernel enclave runs no ioctl.
@Suite struct KernelRegistrationTests {
    static let standIn = "/dev/null"

    static func onStandInDevice(_ syscalls: any Syscalls = LinuxSyscalls()) -> (inout DaemonOptions) -> Void {
        { options in
            options.hostSupport = { SGXHostSupport(devicePath: standIn, device: .probed(.supported), cpu: [.sgx, .sgx1, .sgx2]) }
            options.kernelDevice = KernelDeviceAccess(syscalls: syscalls, devicePath: standIn)
        }
    }

    private func register(_ client: TestClient, _ fd: Int32, label: String) throws -> ResponseOperation {
        try client.call(.register(RegisterRequest(base: 1 << 32, size: 1 << 24, label: label)), descriptors: [fd])
    }

    @Test func aKernelEnclaveIsKnownByItsOpenFileWhateverDescriptorOrConnectionBringsIt() async throws {
        try await withDaemon({ $0.daemon.device = .kernel }, options: Self.onStandInDevice()) { daemon in
            let client = try daemon.connect()
            let enclave = open(Self.standIn, O_RDWR | O_CLOEXEC)
            let duplicate = dup(enclave)
            let another = open(Self.standIn, O_RDWR | O_CLOEXEC)
            defer { [enclave, duplicate, another].forEach { _ = close($0) } }

            guard case .register(let first) = try register(client, enclave, label: "a").outcome.get() else {
                Issue.record("expected a REGISTER reply")
                return
            }
            #expect(first.device == .kernel)
            let again = try #require(try register(client, duplicate, label: "again").error)
            #expect(again.code == .invalidArgument)
            #expect(again.message.contains("ATTACH \(first.enclave)"))
            #expect(try register(client, another, label: "b").error == nil)

            let other = try daemon.connect()
            let refused = try #require(try register(other, enclave, label: "c").error)
            #expect(refused.message.contains("ATTACH \(first.enclave)"))
            #expect(try other.call(.attach(first.enclave)).error == nil)
            #expect(try client.status().enclaves == 2)
        }
    }

    /// kcmp(2) may be missing (a kernel without CONFIG_KCMP) or filtered (a container's seccomp
    /// profile): edmmd then cannot tell, accepts the REGISTER, and says so in STATUS.
    @Test func withoutKcmpARegisterIsAcceptedAndCountedAsUnchecked() async throws {
        let noKcmp = WithoutKcmp()
        try await withDaemon({ $0.daemon.device = .kernel }, options: Self.onStandInDevice(noKcmp)) { daemon in
            let client = try daemon.connect()
            let enclave = open(Self.standIn, O_RDWR | O_CLOEXEC)
            let duplicate = dup(enclave)
            defer { [enclave, duplicate].forEach { _ = close($0) } }
            #expect(try register(client, enclave, label: "a").error == nil)
            #expect(try register(client, duplicate, label: "b").error == nil)
            #expect(try client.status().counter("registrations_unchecked") == 1)
        }
    }
}

/// The real system calls, except that kcmp(2) fails as under a seccomp filter without it.
struct WithoutKcmp: Syscalls {
    private let real = LinuxSyscalls()
    func fstat(_ fd: Int32) throws(SystemCallError) -> FileStatus { try real.fstat(fd) }
    func stat(_ path: String) throws(SystemCallError) -> FileStatus { try real.stat(path) }
    func open(_ path: String, flags: Int32) throws(SystemCallError) -> Int32 { try real.open(path, flags: flags) }
    func close(_ fd: Int32) throws(SystemCallError) { try real.close(fd) }
    func sameOpenFile(_ a: Int32, _ b: Int32) throws(SystemCallError) -> Bool { throw SystemCallError("kcmp", errno: EPERM) }
    func restrictPermissions(_ fd: Int32, _ params: inout RestrictPermissionsParams) -> Int32 { real.restrictPermissions(fd, &params) }
    func modifyTypes(_ fd: Int32, _ params: inout ModifyTypesParams) -> Int32 { real.modifyTypes(fd, &params) }
    func removePages(_ fd: Int32, _ params: inout RemovePagesParams) -> Int32 { real.removePages(fd, &params) }
    func cpuSGXFeatures() -> CPUSGXFeatures { real.cpuSGXFeatures() }
}
