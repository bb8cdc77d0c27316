import CEDMMShims
import Dispatch
import EDMMSystem
import Glibc
import SGXDevice

/// Where the control socket comes from.
public enum ListenerSource: Sendable, Equatable {
    /// edmmd binds `path` itself, with this mode and group (nil: the daemon's own group). A stale
    /// socket file is replaced only when nothing listens on it.
    case bind(path: String, mode: UInt32, group: String?)
    /// A listening SOCK_SEQPACKET descriptor handed over by the service manager (socket activation).
    /// It stays open when edmmd stops: it belongs to the socket unit.
    case inherited(fd: Int32, path: String?)
}

/// The listening socket and its accept loop.
///
/// Concurrency: the accept source fires on the core queue (`queue`), which owns `Progress`.
final class ControlListener: Sendable {
    let fd: Int32
    /// The socket's path, when known.
    let path: String?
    private let ownsSocket: Bool
    private let queue: DispatchQueue
    private let readable: SendableSource<any DispatchSourceRead>
    private var source: any DispatchSourceRead { readable.source }
    private let onAccept: @Sendable (Int32) -> Void
    private let progress: QueueBound<Progress>

    private final class Progress {
        var paused = false
        var started = false
        var closed = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    init(_ listener: ListenerSource, queue: DispatchQueue, onAccept: @escaping @Sendable (Int32) -> Void) throws(StartupError) {
        switch listener {
        case .bind(let path, let mode, let group):
            fd = try Self.bind(path: path, mode: mode, group: group)
            self.path = path
            ownsSocket = true
        case .inherited(let fd, let path):
            let flags = fcntl(fd, F_GETFL)
            guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
                throw .socket("inherited descriptor \(fd) is not usable: \(ErrnoName.of(errno))")
            }
            self.fd = fd
            self.path = path
            ownsSocket = false
        }
        self.queue = queue
        self.onAccept = onAccept
        progress = QueueBound(Progress(), queue: queue)
        readable = SendableSource(DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue))
    }

    func start() {
        source.setEventHandler { @Sendable [weak self] in self?.acceptAll() }
        // Strong: the socket must be closed (and its file removed) even if nothing else holds us.
        source.setCancelHandler { @Sendable in self.closeSocket() }
        progress.async { $0.started = true }
        source.activate()
    }

    /// Stops accepting and returns once a socket edmmd bound is closed and its file removed (a
    /// daemon that exits right after must not leave the file behind).
    func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                let progress = self.progress.value
                guard !progress.closed else { return continuation.resume() }
                progress.closeWaiters.append(continuation)
                // An inactive source never runs its cancel handler.
                guard progress.started else { return self.closeSocket() }
                if progress.paused { self.source.resume() }
                progress.paused = false
                self.source.cancel()
            }
        }
    }

    private func closeSocket() {
        let progress = self.progress.value
        guard !progress.closed else { return }
        progress.closed = true
        if ownsSocket {
            Glibc.close(fd)
            if let path { unlink(path) }
        }
        let waiters = progress.closeWaiters
        progress.closeWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    private func acceptAll() {
        let progress = self.progress.value
        while true {
            let client = edmm_accept(fd)
            if client >= 0 {
                onAccept(client)
                continue
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK:
                return
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors: pause instead of spinning on a listener that stays readable.
                guard !source.isCancelled else { return }
                progress.paused = true
                source.suspend()
                queue.asyncAfter(deadline: .now() + .milliseconds(100)) {
                    let progress = self.progress.value
                    guard progress.paused else { return }
                    progress.paused = false
                    self.source.resume()
                }
                return
            default:
                // ECONNABORTED and friends: that connection is gone, the next may be fine.
                continue
            }
        }
    }

    /// Binds a SOCK_SEQPACKET listener at `path`, replacing a stale socket file (one nobody listens
    /// on) but never a live socket or any other kind of file.
    private static func bind(path: String, mode: UInt32, group: String?) throws(StartupError) -> Int32 {
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else {
                throw .socket("\(path) exists and is not a socket; refusing to replace it")
            }
            let probe = edmm_seqpacket_connect(path, 0)
            if probe >= 0 {
                Glibc.close(probe)
                throw .socket("another process already listens on \(path)")
            }
            unlink(path)
        } else {
            let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !parent.isEmpty, access(parent, F_OK) != 0, mkdir(parent, 0o755) != 0, errno != EEXIST {
                throw .socket("cannot create \(parent): \(ErrnoName.of(errno))")
            }
        }
        let fd = edmm_seqpacket_listen(path, 512, 1)
        guard fd >= 0 else { throw .socket("cannot listen on \(path): \(ErrnoName.of(errno))") }
        var failure: String?
        if chmod(path, mode_t(mode)) != 0 { failure = "chmod \(String(mode, radix: 8)) \(path): \(ErrnoName.of(errno))" }
        if failure == nil, let group {
            if let gid = GroupDirectory.groupID(named: group) {
                if chown(path, uid_t(bitPattern: -1), gid) != 0 { failure = "chown :\(group) \(path): \(ErrnoName.of(errno))" }
            } else {
                failure = "[daemon] socket_group: no group named \"\(group)\" on this host"
            }
        }
        if let failure {
            Glibc.close(fd)
            unlink(path)
            throw .socket(failure)
        }
        return fd
    }
}
