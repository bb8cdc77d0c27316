import Dispatch
import EDMMCore
import EDMMProtocol
import Glibc
import Logging
import Synchronization

/// One client connection, as the daemon's core and the enclaves hold it.
///
/// Concurrency: the connection's state (its phase, requests in flight, enclaves in use, replies
/// waiting to be written) is a `SessionState` that only `queue`, this connection's serial queue,
/// reaches (`QueueBound`). The socket loop reads on it (`serveReadable`); the write source and the
/// HELLO timer fire there; enclaves hand their answers back through `deliver`, `push` and
/// `forget`, which hop onto it. The socket descriptor is closed only after the loop stopped
/// watching it and the write source has been cancelled.
final class Session: Sendable {
    let id: UInt64
    let peer: PeerCredentials
    let limits: ConnectionLimits
    let queue: DispatchQueue
    /// Where REGISTERs open their descriptors, in arrival order, off the socket loop
    /// (`OpeningRegistration`).
    let openings: DispatchQueue
    let core: DaemonCore
    let fd: Int32
    let state: QueueBound<SessionState>
    let helloTimer: SendableSource<any DispatchSourceTimer>
    /// The thread running `SessionState.submitInline`, if any (see there); 0 otherwise.
    let inlineDeliveryThread = Atomic<UInt>(0)
    /// Deliveries queued with `queue.async` and not yet settled.
    let deliveriesInTransit = Atomic<Int>(0)

    init(id: UInt64, fd: Int32, peer: PeerCredentials, limits: ConnectionLimits, core: DaemonCore) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.limits = limits
        self.core = core
        queue = DispatchQueue(label: "edmmd.session.\(id)")
        openings = DispatchQueue(label: "edmmd.session.\(id).register")
        helloTimer = .timer(on: queue)
        state = QueueBound(queue: queue)
        state.fill(SessionState(self))
    }

    var logger: Logger {
        var logger = core.logger
        logger[metadataKey: "session"] = "\(id)"
        logger[metadataKey: "uid"] = "\(peer.uid)"
        return logger
    }

    /// Runs `body` with the state on the queue, later; the session lives until then.
    func onQueue(_ body: @escaping @Sendable (SessionState) -> Void) {
        queue.async { body(self.state.value) }
    }

    /// Starts reading (any queue).
    func start() {
        helloTimer.activateIdle { [weak self] in self?.state.value.helloTimedOut() }
        helloTimer.source.schedule(deadline: .now() + .microseconds(Int(limits.helloTimeout.microsecondsClamped)))
        onQueue { $0.startReading() }
    }

    /// The socket loop's turn: reads and serves what arrived on this thread, holding the queue
    /// (which runs a `sync` block on the caller's thread when idle, and waits only behind the
    /// queue's own short work items). False if messages are left for another turn.
    func serveReadable() -> Bool {
        queue.sync { state.value.readable() }
    }

    // MARK: From enclaves (any queue)

    /// Answers of requests an enclave completed, in the order given. Generic so that a single
    /// answer (`CollectionOfOne`, every request the enclave answers at once) needs no array.
    func deliver<Completions: Collection & Sendable>(_ completions: Completions) where Completions.Element == Completion {
        // Only the thread that holds this session's queue inside `submitInline` stores its own id.
        // Answers an enclave handed over earlier and still on their way come first: replies of
        // one enclave leave in request order (docs/protocol.md).
        if inlineDeliveryThread.load(ordering: .relaxed) == UInt(pthread_self()), deliveriesInTransit.load(ordering: .acquiring) == 0 {
            state.value.settle(completions)
        } else {
            deliveriesInTransit.add(1, ordering: .releasing)
            onQueue { state in
                // Settled and written in this one queue item: a flush's answers leave together.
                state.writingAfter { state.settle(completions) }
                self.deliveriesInTransit.subtract(1, ordering: .releasing)
            }
        }
    }

    /// The enclave was unregistered: this connection no longer uses it.
    func forget(_ handle: EnclaveHandle) {
        onQueue { _ = $0.enclaves.removeValue(forKey: handle) }
    }

    /// A daemon-initiated notice (RECLAIM_NOTICE).
    func push(_ push: Push) {
        onQueue { state in state.writingAfter { state.queuePush(push) } }
    }

    // MARK: Shutdown (any queue)

    /// Stops reading, sends SHUTDOWN_NOTICE, and closes once every request it read is answered
    /// and written out; `completion` runs when done. So a request the client got no answer for
    /// was never applied (docs/protocol.md, SHUTDOWN_NOTICE).
    func finish(notice: ShutdownNotice, completion: @escaping @Sendable () -> Void) {
        onQueue { $0.finish(notice: notice, completion: completion) }
    }

    /// Closes now, whatever is still queued (shutdown deadline).
    func abort(reason: String) {
        onQueue { $0.close(reason: reason) }
    }
}
