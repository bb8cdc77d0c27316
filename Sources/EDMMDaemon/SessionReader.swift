import CEDMMShims
import Dispatch
import Glibc
import Synchronization

/// Waits for a session's socket on a thread of its own and runs the session's read handler on
/// the session's queue with `queue.sync`. On an idle queue `sync` runs the block on the calling
/// thread, so a request costs the kernel's one wakeup of this thread. A DispatchSource costs two
/// (Dispatch's manager thread sees the event, then wakes a worker), which measured as 4-5x a raw
/// SOCK_SEQPACKET round trip (docs/benchmarks.md).
///
/// Concurrency: `mode` (a mutex) is set from any queue; `wake` (an eventfd) tells the thread to
/// look at it again. The handler runs on the session's queue, like every session state change.
/// The thread reports its end on the session's queue (`stopped`), after which it no longer
/// touches the socket, so the socket may close then.
final class SessionReader: Sendable {
    enum Mode { case reading, paused, stopped }

    private let socket: Int32
    private let queue: DispatchQueue
    private let wake: Int32
    private let mode = Mutex(Mode.reading)

    /// nil if no eventfd could be made (the descriptor limit): the session cannot be served.
    init?(socket: Int32, queue: DispatchQueue) {
        wake = edmm_wake_fd()
        guard wake >= 0 else { return nil }
        self.socket = socket
        self.queue = queue
    }

    /// Starts the thread: `readable` runs on the queue whenever the socket has something (or
    /// hung up) while reading; `stopped` once, on the queue, when the thread ends. False if no
    /// thread could be made (`stopped` then never runs).
    func start(readable: @escaping @Sendable () -> Void, stopped: @escaping @Sendable () -> Void) -> Bool {
        let started = Self.spawn { [self] in
            run(readable)
            Glibc.close(wake)
            queue.async(execute: stopped)
        }
        if !started { Glibc.close(wake) }
        return started
    }

    func pause() { set(.paused) }
    func resume() { set(.reading) }
    func stop() { set(.stopped) }

    private func set(_ new: Mode) {
        let changed = mode.withLock { m -> Bool in
            guard m != .stopped, m != new else { return false }
            m = new
            return true
        }
        var one: UInt64 = 1
        if changed { _ = write(wake, &one, 8) }
    }

    private func run(_ readable: @Sendable () -> Void) {
        while true {
            let current = mode.withLock { $0 }
            if current == .stopped { return }
            // Paused: the socket is left out (poll would report a hang-up over and over).
            var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0), pollfd(fd: current == .reading ? socket : -1, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, -1) >= 0 || errno == EINTR else { return }
            if fds[0].revents != 0 {
                var count: UInt64 = 0
                _ = read(wake, &count, 8)
            }
            if fds[1].revents != 0 && mode.withLock({ $0 }) == .reading { queue.sync(execute: readable) }
        }
    }

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// A detached thread with a 1 MiB stack (requests run on it: see the type's comment).
    private static func spawn(_ run: @escaping () -> Void) -> Bool {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 1 << 20)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let body = Unmanaged.passRetained(Body(run))
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, &attributes,
            { raw in
                // `raw` is the body passed below, never nil.
                Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
                return nil
            }, body.toOpaque())
        if rc != 0 { body.release() }
        return rc == 0
    }
}
