import CEDMMShims
import SGXDevice
import SGXKernel
import SGXKernelTesting
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The SGX device node as the fake file system presents it (misc major 10, a dynamic minor).
let fakeSGXDevice = DeviceNumber(major: 10, minor: 125)

/// A `KernelEnclaveDevice` on a fake kernel that answers with `replies`.
func makeFakeKernelEnclave(
    replies: [FakeSyscalls.IoctlReply] = [], cpu: CPUSGXFeatures = [.sgx, .sgx1, .sgx2, .launchControl]
) throws -> (KernelEnclaveDevice, FakeSyscalls) {
    let kernel = FakeSyscalls(cpu: cpu)
    kernel.addFile(SGXDeviceNode.defaultPath, FileStatus(kind: .characterDevice, device: fakeSGXDevice))
    let fd = kernel.addDescriptor(FileStatus(kind: .characterDevice, device: fakeSGXDevice))
    kernel.script(replies)
    return (try KernelEnclaveDevice(adopting: fd, syscalls: kernel), kernel)
}

/// A sleeper that records the pauses instead of sleeping.
final class RecordingSleeper: Sendable {
    private let pauses = Mutex<[Duration]>([])
    var recorded: [Duration] { pauses.withLock { $0 } }
    var sleep: IoctlRunner.Sleep { { duration in self.pauses.withLock { $0.append(duration) } } }
}

/// A real unlinked temporary file, open read-write.
func openTemporaryFile() throws -> Int32 {
    var template = Array("/tmp/edmm-test-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    try #require(fd >= 0, "mkstemp: errno \(errno)")
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    return fd
}

func makePipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    try #require(pipe(&fds) == 0, "pipe: errno \(errno)")
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }  // pipe2 is hidden from Swift
    return (fds[0], fds[1])
}

func makeSeqpacketPair(nonblocking: Bool = false) throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    try #require(edmm_seqpacket_pair(&fds, nonblocking ? 1 : 0) == 0, "socketpair: errno \(errno)")
    return (fds[0], fds[1])
}

func openPath(_ path: String, _ flags: Int32 = O_RDONLY | O_CLOEXEC) throws -> Int32 {
    let fd = open(path, flags)
    try #require(fd >= 0, "open \(path): errno \(errno)")
    return fd
}

func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }
func isCloseOnExec(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) & FD_CLOEXEC != 0 }

let page: UInt64 = 4096

/// The errno of a C call that returned -1, read at once; nil when the call succeeded.
func failureErrno<T: BinaryInteger>(_ rc: T) -> Int32? { rc == -1 ? errno : nil }

/// The number of a descriptor that was open and is now closed. Tests run in parallel and the
/// kernel hands out the lowest free number, so the descriptor is moved near the top of the range
/// first, `slot` places below it (one slot per test): no other test reopens that number while
/// this one expects it to be closed.
func closedDescriptor(slot: Int32) throws -> Int32 {
    var limit = rlimit()
    try #require(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
    let fd = try openTemporaryFile()
    defer { close(fd) }
    let high = fcntl(fd, F_DUPFD, Int32(min(limit.rlim_cur, 65536)) - 1 - slot)
    try #require(high >= 0, "F_DUPFD: errno \(errno)")
    close(high)
    return high
}
