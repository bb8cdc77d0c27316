import EDMMCore
import EDMMProtocol
import Glibc
import SGXDevice
import SGXKernel
import Synchronization
import Testing

/// REGISTER's host-only options on the kernel device, without SGX hardware: `/dev/null` stands in
/// for the enclave (KernelRegistrationTests) and the SGX2 ioctls answer from a script, as the
/// kernel's would. On the kernel device edmmd cannot read the EPCM, so implicit commit trusts the
/// client, and the kernel's errno, count and result go back unchanged.
@Suite struct KernelHostOnlyClientTests {
    private static let hostOnly: RequestFlags = [.implicitCommit, .kernelErrors]

    private func register(_ client: TestClient, _ fd: Int32, _ flags: RequestFlags) throws -> EnclaveHandle {
        let request = Request.register(RegisterRequest(base: 1 << 32, size: 1 << 24, label: "sdk"))
        let reply = try client.call(request, flags: flags, descriptors: [fd])
        guard case .success(.register(let registered)) = reply.outcome else { throw TestClient.Failure.unexpected("\(reply.outcome)") }
        return registered.enclave
    }

    private func withKernelDaemon(_ ioctls: ScriptedSGX2Ioctls, _ body: (TestDaemon, TestClient, Int32) throws -> Void) async throws {
        try await withDaemon({ $0.daemon.device = .kernel }, options: KernelRegistrationTests.onStandInDevice(ioctls)) { daemon in
            let enclave = open(KernelRegistrationTests.standIn, O_RDWR | O_CLOEXEC)
            defer { _ = close(enclave) }
            try body(daemon, try daemon.connect(), enclave)
        }
    }

    @Test func implicitCommitTrustsTheClientAndRunsTheTrimOnTheDevice() async throws {
        let ioctls = ScriptedSGX2Ioctls()
        try await withKernelDaemon(ioctls) { _, client, enclave in
            let handle = try register(client, enclave, Self.hostOnly)
            let done = try client.done(.trim(RangeRequest(enclave: handle, range: pages(16, 4))))
            #expect(done.pages == 4)
            #expect(ioctls.calls == [.init(name: "modify_types", offset: 16 * Page.size, length: 4 * Page.size)])
            let stats = try client.stats(handle)
            #expect(stats.counter("pages_implicitly_committed") == 4)
            #expect(stats.counter("committed_lower_bound") == 1)
        }
    }

    @Test func withoutImplicitCommitTheKernelDeviceRefusesATrimOfPagesTheLedgerNeverSaw() async throws {
        let ioctls = ScriptedSGX2Ioctls()
        try await withKernelDaemon(ioctls) { _, client, enclave in
            let handle = try register(client, enclave, [])
            #expect(try client.expectError(.trim(RangeRequest(enclave: handle, range: pages(16, 4)))).code == .invalidPageState)
            #expect(ioctls.calls.isEmpty)
        }
    }

    @Test func theKernelsConflictComesBackWithItsErrnoCountAndResultAndTheLedgerFollowsTheCount() async throws {
        // EMODT met an EACCEPT on the third page: EFAULT, two pages done, SGX_EPC_PAGE_CONFLICT.
        let ioctls = ScriptedSGX2Ioctls([.init(errno: EFAULT, pages: 2, result: 7)])
        try await withKernelDaemon(ioctls) { _, client, enclave in
            let handle = try register(client, enclave, Self.hostOnly)
            let refused = try client.expectError(.trim(RangeRequest(enclave: handle, range: pages(16, 4))))
            #expect(refused.code == .kernelError)
            #expect(refused.detail == .kernel(ioctl: .modifyTypes, errno: EFAULT, countBytes: 2 * Page.size, result: 7))
            #expect(try client.stats(handle).counter("pages_trimmed") == 2)
        }
    }

    @Test func aRemoveOfPagesNeverTrimmedGoesToTheDeviceAndItsEPERMComesBack() async throws {
        let ioctls = ScriptedSGX2Ioctls([.init(errno: EPERM, pages: 0)])
        try await withKernelDaemon(ioctls) { _, client, enclave in
            let handle = try register(client, enclave, Self.hostOnly)
            let refused = try client.expectError(.trimAccepted(RangeRequest(enclave: handle, range: pages(8, 2))))
            #expect(refused.detail == .kernel(ioctl: .removePages, errno: EPERM, countBytes: 0, result: nil))
            #expect(ioctls.calls == [.init(name: "remove_pages", offset: 8 * Page.size, length: 2 * Page.size)])
        }
    }
}

/// The real system calls for descriptors; the SGX2 ioctls answer from a script (then succeed on
/// every page) and are recorded.
final class ScriptedSGX2Ioctls: Syscalls {
    struct Answer: Sendable {
        var errno: Int32
        /// Pages done before the error (`count`); nil: all of them.
        var pages: UInt64?
        var result: UInt64 = 0
    }

    struct Call: Equatable, Sendable {
        var name: String
        var offset: UInt64
        var length: UInt64
    }

    private let real = LinuxSyscalls()
    private let state: Mutex<(script: [Answer], calls: [Call])>

    init(_ script: [Answer] = []) {
        state = Mutex((script, []))
    }

    var calls: [Call] { state.withLock { $0.calls } }

    private func answer(_ call: Call, count: inout UInt64, result: inout UInt64) -> Int32 {
        let answer = state.withLock { state -> Answer in
            state.calls.append(call)
            return state.script.isEmpty ? Answer(errno: 0) : state.script.removeFirst()
        }
        count = answer.pages.map { $0 * Page.size } ?? call.length
        result = answer.result
        return answer.errno
    }

    func fstat(_ fd: Int32) throws(SystemCallError) -> FileStatus { try real.fstat(fd) }
    func stat(_ path: String) throws(SystemCallError) -> FileStatus { try real.stat(path) }
    func open(_ path: String, flags: Int32) throws(SystemCallError) -> Int32 { try real.open(path, flags: flags) }
    func close(_ fd: Int32) throws(SystemCallError) { try real.close(fd) }
    func sameOpenFile(_ a: Int32, _ b: Int32) throws(SystemCallError) -> Bool { try real.sameOpenFile(a, b) }
    func cpuSGXFeatures() -> CPUSGXFeatures { real.cpuSGXFeatures() }

    func restrictPermissions(_ fd: Int32, _ params: inout RestrictPermissionsParams) -> Int32 {
        answer(
            Call(name: "restrict_permissions", offset: params.offset, length: params.length), count: &params.count, result: &params.result)
    }

    func modifyTypes(_ fd: Int32, _ params: inout ModifyTypesParams) -> Int32 {
        answer(Call(name: "modify_types", offset: params.offset, length: params.length), count: &params.count, result: &params.result)
    }

    func removePages(_ fd: Int32, _ params: inout RemovePagesParams) -> Int32 {
        var unused: UInt64 = 0
        return answer(Call(name: "remove_pages", offset: params.offset, length: params.length), count: &params.count, result: &unused)
    }
}
