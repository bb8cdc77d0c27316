import CEDMMShims
import Glibc

/// An epoll set with an eventfd to wake its waiter: the calls behind one event thread that
/// serves many sockets. Each watched descriptor carries a 64-bit token that `wait` reports back
/// (never the descriptor itself, whose number the kernel may hand out again once it is closed).
///
/// Thread safety: `watch`, `unwatch` and `wake` may be called from any thread (epoll_ctl and an
/// eventfd write are); `wait` is for one thread at a time.
public final class EventPoll: Sendable {
    /// The token `wait` reports for `wake`; no watched descriptor may use it.
    public static let wakeToken = UInt64.max

    private let epoll: Int32
    private let wakeup: Int32

    /// A new set, or the errno of the call the kernel refused.
    public init() throws(SeqpacketIO.Failure) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SeqpacketIO.Failure(errno: errno) }
        wakeup = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeup >= 0 else {
            let error = errno
            Glibc.close(epoll)
            throw SeqpacketIO.Failure(errno: error)
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeToken
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, wakeup, &event) == 0 else {
            let error = errno
            Glibc.close(wakeup)
            Glibc.close(epoll)
            throw SeqpacketIO.Failure(errno: error)
        }
    }

    deinit {
        Glibc.close(wakeup)
        Glibc.close(epoll)
    }

    /// Reports `token` whenever `fd` becomes readable or hangs up (edge-triggered: the waiter must
    /// read to EAGAIN, or remember that it did not). A descriptor readable already is reported
    /// at once. Returns 0 or the errno.
    @discardableResult
    public func watch(_ fd: Int32, token: UInt64) -> Int32 {
        precondition(token != Self.wakeToken, "the wake token is reserved")
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = token
        return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : errno
    }

    /// Stops reporting `fd` (before it is closed; closing alone would not remove a descriptor
    /// another process also holds).
    public func unwatch(_ fd: Int32) {
        var event = epoll_event()
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, &event)
    }

    /// Wakes the waiter: `wait` reports `wakeToken` once, however many wakes came first.
    public func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeup, &one, MemoryLayout<UInt64>.size)
    }

    /// Waits until something is ready (or `timeoutMilliseconds` passed; -1 waits without bound,
    /// 0 only looks) and calls `ready` with each reported token, in the kernel's order.
    public func wait(timeoutMilliseconds: Int32, maxEvents: Int = 64, _ ready: (UInt64) -> Void) {
        withUnsafeTemporaryAllocation(of: epoll_event.self, capacity: maxEvents) { events in
            let count = epoll_wait(epoll, events.baseAddress, Int32(maxEvents), timeoutMilliseconds)
            guard count > 0 else { return }  // EINTR, or nothing within the timeout
            for index in 0..<Int(count) {
                let token = events[index].data.u64
                if token == Self.wakeToken {
                    var drained: UInt64 = 0
                    _ = Glibc.read(wakeup, &drained, MemoryLayout<UInt64>.size)
                }
                ready(token)
            }
        }
    }
}
