import CEDMMShims
import Glibc

/// The cgroup identity of the process at the other end of a Unix socket, read from
/// `/proc/<pid>/cgroup` of its SO_PEERCRED pid.
///
/// A pid can be reused once its process exits, so the file read might be another process's.
/// Where the kernel has SO_PEERPIDFD (Linux 6.5 and later) the pidfd pins the peer: the file is
/// read first, then the pidfd must still name a running process, which proves the pid was not
/// reused in between. Older kernels (Debian 12's 6.1) have no such proof: the file is read as
/// soon as the peer says HELLO, and a peer that connected, handed its socket to a child and
/// exited could in principle be taken for whichever process gets its pid next
/// (docs/kubernetes.md, "Who a client is").
public enum PeerScopeResolver {
    public enum Method: String, Sendable {
        /// SO_PEERPIDFD: the answer is the peer's.
        case pidfd
        /// /proc only (no SO_PEERPIDFD): the answer is the pid's at the moment of reading.
        case procfs
    }

    public struct Resolution: Equatable, Sendable {
        public var identity: CgroupIdentity
        public var method: Method
    }

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }

    public static func resolve(socket fd: Int32, pid: Int32) -> Result<Resolution, Failure> {
        guard pid > 0 else {
            return .failure(Failure(message: "the kernel gave no pid for the peer (it is in another pid namespace edmmd cannot see)"))
        }
        let pidfd = edmm_peer_pidfd(fd)
        let noPidfd = errno
        defer { if pidfd >= 0 { close(pidfd) } }
        if pidfd < 0, noPidfd != ENOPROTOOPT, noPidfd != EINVAL {
            return .failure(Failure(message: "SO_PEERPIDFD: \(String(cString: strerror(noPidfd)))"))
        }
        guard let text = readProcFile("/proc/\(pid)/cgroup") else {
            let error = errno
            if error == ENOENT || error == ESRCH { return .failure(Failure(message: "process \(pid) exited before its cgroup was read")) }
            return .failure(Failure(message: "cannot read /proc/\(pid)/cgroup: \(String(cString: strerror(error)))"))
        }
        guard pidfd >= 0 else { return .success(Resolution(identity: CgroupScopeParser.identity(procCgroup: text), method: .procfs)) }
        switch edmm_pidfd_alive(pidfd) {
        case 1: return .success(Resolution(identity: CgroupScopeParser.identity(procCgroup: text), method: .pidfd))
        case 0: return .failure(Failure(message: "process \(pid) exited before its cgroup could be confirmed"))
        default: return .failure(Failure(message: "pidfd_send_signal: \(String(cString: strerror(errno)))"))
        }
    }

    /// Whether this kernel offers SO_PEERPIDFD, tried on a socket pair.
    public static var kernelHasPeerPidfd: Bool {
        var pair: [Int32] = [-1, -1]
        guard edmm_seqpacket_pair(&pair, 0) == 0 else { return false }
        defer {
            close(pair[0])
            close(pair[1])
        }
        let pidfd = edmm_peer_pidfd(pair[0])
        if pidfd >= 0 { close(pidfd) }
        return pidfd >= 0
    }

    /// A /proc file of at most 64 KiB; nil with errno set when it cannot be opened or read.
    private static func readProcFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65_536 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
