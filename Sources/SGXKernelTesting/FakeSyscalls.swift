import SGXDevice
import SGXKernel
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An in-memory `Syscalls` for tests: a small file system of paths and open descriptors (each on
/// an open file of its own unless `duplicate` made it), a script of ioctl answers, and a record of
/// every ioctl and close. Thread-safe.
///
/// An ioctl on a descriptor that is not open answers EBADF. Once the script is used up, every
/// ioctl answers ENOTTY, as a descriptor that knows no SGX2 ioctls would.
public final class FakeSyscalls: Syscalls {
    /// One scripted ioctl answer.
    public enum IoctlReply: Hashable, Sendable {
        /// The call failed before the kernel copied anything back: the struct stays as passed
        /// (the dispatcher's EBUSY, ENODEV, ENOTTY, EINVAL from validation, ...).
        case rejected(errno: Int32)
        /// The per-page worker ran: `count` is copied back, and `result` when given, as the
        /// kernel's copy_to_user of the whole struct does; errno 0 is success.
        case processed(errno: Int32, count: UInt64, result: UInt64? = nil)
    }

    /// One ioctl as the fake received it (the struct as passed in, before any copy-back).
    public enum IoctlCall: Hashable, Sendable {
        case restrictPermissions(fd: Int32, RestrictPermissionsParams)
        case modifyTypes(fd: Int32, ModifyTypesParams)
        case removePages(fd: Int32, RemovePagesParams)
    }

    private struct State {
        var paths: [String: FileStatus] = [:]
        var openErrors: [String: Int32] = [:]
        var descriptors: [Int32: FileStatus] = [:]
        /// The open file each descriptor names (dup(2) shares one).
        var openFiles: [Int32: Int] = [:]
        var nextOpenFile = 1
        var kcmpError: Int32?
        var nextDescriptor: Int32 = 100
        var replies: [IoctlReply] = []
        var calls: [IoctlCall] = []
        var closed: [Int32] = []
        var cpu: CPUSGXFeatures

        mutating func install(_ status: FileStatus, openFile: Int? = nil) -> Int32 {
            let fd = nextDescriptor
            nextDescriptor += 1
            descriptors[fd] = status
            openFiles[fd] = openFile ?? nextOpenFile
            if openFile == nil { nextOpenFile += 1 }
            return fd
        }
    }

    private let state: Mutex<State>

    public init(cpu: CPUSGXFeatures = []) {
        state = Mutex(State(cpu: cpu))
    }

    /// Makes `path` exist for stat(2) and open(2).
    public func addFile(_ path: String, _ status: FileStatus) {
        state.withLock { $0.paths[path] = status }
    }

    /// Makes open(2) of `path` fail with `errno` (stat(2) is unaffected).
    public func failOpen(_ path: String, errno: Int32) {
        state.withLock { $0.openErrors[path] = errno }
    }

    /// Opens a descriptor of the given kind, as if inherited or received; returns its number.
    public func addDescriptor(_ status: FileStatus) -> Int32 {
        state.withLock { $0.install(status) }
    }

    /// dup(2): a new descriptor on the same open file as `fd` (nil if `fd` is not open).
    public func duplicate(_ fd: Int32) -> Int32? {
        state.withLock { state in
            guard let status = state.descriptors[fd] else { return nil }
            return state.install(status, openFile: state.openFiles[fd])
        }
    }

    /// Makes kcmp(2) fail with `errno` (ENOSYS: no CONFIG_KCMP; EPERM: a seccomp filter).
    public func failKcmp(errno: Int32) {
        state.withLock { $0.kcmpError = errno }
    }

    /// Appends answers for the next ioctls, in order.
    public func script(_ replies: [IoctlReply]) {
        state.withLock { $0.replies.append(contentsOf: replies) }
    }

    public var ioctlCalls: [IoctlCall] { state.withLock { $0.calls } }
    public var closedDescriptors: [Int32] { state.withLock { $0.closed } }
    public var openDescriptors: Set<Int32> { state.withLock { Set($0.descriptors.keys) } }

    public func fstat(_ fd: Int32) throws(SystemCallError) -> FileStatus {
        guard let status = state.withLock({ $0.descriptors[fd] }) else { throw SystemCallError("fstat", errno: EBADF) }
        return status
    }

    public func stat(_ path: String) throws(SystemCallError) -> FileStatus {
        guard let status = state.withLock({ $0.paths[path] }) else {
            throw SystemCallError("stat \(path)", errno: ENOENT)
        }
        return status
    }

    public func open(_ path: String, flags: Int32) throws(SystemCallError) -> Int32 {
        let opened: Result<Int32, SystemCallError> = state.withLock { state in
            if let code = state.openErrors[path] { return .failure(SystemCallError("open \(path)", errno: code)) }
            guard let status = state.paths[path] else {
                return .failure(SystemCallError("open \(path)", errno: ENOENT))
            }
            return .success(state.install(status))
        }
        return try opened.get()
    }

    public func close(_ fd: Int32) throws(SystemCallError) {
        let wasOpen = state.withLock { state in
            guard state.descriptors.removeValue(forKey: fd) != nil else { return false }
            state.openFiles[fd] = nil
            state.closed.append(fd)
            return true
        }
        guard wasOpen else { throw SystemCallError("close", errno: EBADF) }
    }

    public func sameOpenFile(_ a: Int32, _ b: Int32) throws(SystemCallError) -> Bool {
        let answer: Result<Bool, SystemCallError> = state.withLock { state in
            if let code = state.kcmpError { return .failure(SystemCallError("kcmp", errno: code)) }
            guard let x = state.openFiles[a], let y = state.openFiles[b] else { return .failure(SystemCallError("kcmp", errno: EBADF)) }
            return .success(x == y)
        }
        return try answer.get()
    }

    public func restrictPermissions(_ fd: Int32, _ params: inout RestrictPermissionsParams) -> Int32 {
        let reply = nextReply(fd, .restrictPermissions(fd: fd, params))
        return apply(reply, count: &params.count, result: &params.result)
    }

    public func modifyTypes(_ fd: Int32, _ params: inout ModifyTypesParams) -> Int32 {
        let reply = nextReply(fd, .modifyTypes(fd: fd, params))
        return apply(reply, count: &params.count, result: &params.result)
    }

    public func removePages(_ fd: Int32, _ params: inout RemovePagesParams) -> Int32 {
        var noResult: UInt64 = 0
        let reply = nextReply(fd, .removePages(fd: fd, params))
        return apply(reply, count: &params.count, result: &noResult)
    }

    public func cpuSGXFeatures() -> CPUSGXFeatures { state.withLock { $0.cpu } }

    private func nextReply(_ fd: Int32, _ call: IoctlCall) -> IoctlReply {
        state.withLock { state in
            guard state.descriptors[fd] != nil else { return .rejected(errno: EBADF) }
            state.calls.append(call)
            return state.replies.isEmpty ? .rejected(errno: ENOTTY) : state.replies.removeFirst()
        }
    }

    private func apply(_ reply: IoctlReply, count: inout UInt64, result: inout UInt64) -> Int32 {
        switch reply {
        case .rejected(let errno):
            return errno
        case .processed(let errno, let newCount, let newResult):
            count = newCount
            if let newResult { result = newResult }
            return errno
        }
    }
}
