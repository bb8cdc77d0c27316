import EDMMSystem
import Synchronization

/// The daemon's one event thread for client sockets. A readable socket is served by this thread
/// itself: it takes the session's queue (`Session.serveReadable`, an idle serial queue runs a
/// `sync` block on the caller's thread), reads, decodes, admits, runs each request that needs no
/// ioctl inline on its enclave (`EnclaveContext.submit`), and writes the replies: one thread
/// wake-up per message, where a DispatchSource costs two (its manager thread, then a worker).
///
/// The loop never waits on anything a client controls: an enclave that is busy (a flush may wait
/// on a simulated EPC lock its client holds) gets the request on its queue instead, and the
/// session queue's own work items (deliveries, pushes, timers, writes), which the loop may wait
/// behind, never block. A session gets at most `SessionState.packetsPerTurn` messages per turn,
/// so that one fast sender cannot starve the others; its rest is served after them.
final class SocketLoop: Sendable {
    private let poll: EventPoll
    /// The watched sessions by id, the token their socket reports.
    private let sessions = Mutex<[UInt64: Session]>([:])
    private let stopping = Atomic<Bool>(false)

    init() throws(StartupError) {
        do {
            poll = try EventPoll()
        } catch {
            throw .socket("cannot create the event loop's epoll set: \(ErrnoName.of(error.errno))")
        }
    }

    /// Starts the thread; it holds the loop until `stop`.
    func start() throws(StartupError) {
        guard OSThread.startDetached({ self.run() }) else { throw .socket("cannot start the socket loop's thread") }
    }

    /// Ends the thread after its current turn (daemon shutdown, once every session closed).
    func stop() {
        stopping.store(true, ordering: .releasing)
        poll.wake()
    }

    /// Serves `session`'s socket from now on (its queue); 0, or the errno if the kernel refused.
    func watch(_ session: Session) -> Int32 {
        sessions.withLock { $0[session.id] = session }
        let error = poll.watch(session.fd, token: session.id)
        if error != 0 { sessions.withLock { _ = $0.removeValue(forKey: session.id) } }
        return error
    }

    /// Stops serving `session`'s socket, before it closes (its queue; again is harmless). A turn
    /// already under way finds the session closed or no longer reading, and reads nothing.
    func unwatch(_ session: Session) {
        guard sessions.withLock({ $0.removeValue(forKey: session.id) }) != nil else { return }
        poll.unwatch(session.fd)
    }

    private func run() {
        // Sessions that still had messages when their turn ended: edge-triggered epoll will not
        // report them again, so they are served after the others without waiting.
        var unfinished: [Session] = []
        while !stopping.load(ordering: .acquiring) {
            var ready = unfinished
            unfinished.removeAll(keepingCapacity: true)
            poll.wait(timeoutMilliseconds: ready.isEmpty ? -1 : 0) { token in
                guard let session = sessions.withLock({ $0[token] }), !ready.contains(where: { $0 === session }) else { return }
                ready.append(session)
            }
            for session in ready where !session.serveReadable() { unfinished.append(session) }
        }
    }
}
