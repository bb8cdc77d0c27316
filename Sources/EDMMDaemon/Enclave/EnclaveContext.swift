import Dispatch
import EDMMCore
import EDMMProtocol
import Logging
import Synchronization

/// Where an enclave sends the answer to one request.
struct ReplyTarget: Sendable {
    let session: Session
    let id: UInt64
    let verb: Verb
    /// FREE/RELAX with the no-reply flag: nothing is sent on success (errors still are).
    let silentOnSuccess: Bool
}

/// A client request routed to an enclave's queue.
struct EnclaveCall: Sendable {
    let target: ReplyTarget
    let request: Request
}

/// One registered enclave, as sessions, the registry, the supervisor and the FD store hold it.
///
/// Concurrency: the enclave's work (its ledger, device, batch queue, connections and counters) is
/// an `EnclaveState` that one thread at a time holds (`OwnerBound`). `queue` is a serial queue of
/// this enclave alone, and each of its work items holds the state while it runs: requests of every
/// connection that uses the enclave run there in arrival order, and so do its flushes (ioctls),
/// its batch timer and its reclaims. The socket loop serves a request that needs no ioctl inline
/// when the queue is idle (`submit`). The methods here may be called from any thread; what other
/// threads read directly is `identity` and `snapshot`, a copy the state publishes after every
/// change.
@dynamicMemberLookup
final class EnclaveContext: Sendable {
    let identity: EnclaveIdentity
    let queue: DispatchQueue
    let core: DaemonCore
    let state = OwnerBound<EnclaveState>()
    private let published: Mutex<EnclaveSnapshot>
    /// Client requests handed to `queue` and not yet handled: while there are any, later ones
    /// go the same way, so that one enclave's requests run in arrival order.
    private let handedOff = Atomic<Int>(0)

    init(identity: EnclaveIdentity, device: any OpenedEnclave, core: DaemonCore) {
        self.identity = identity
        self.core = core
        queue = DispatchQueue(label: "edmmd.enclave.\(identity.handle)")
        let settings = EnclaveSettings(core.settings, uid: identity.owner.uid)
        let now = MonotonicInstant.now
        published = Mutex(
            EnclaveSnapshot(
                identity: identity, pages: PageCounts(), quotaPages: settings.quota.enclaveLimit, connections: 0,
                lastActivity: now, counters: EnclaveCounters()))
        state.fill(EnclaveState(self, device: device, settings: settings, now: now))
    }

    subscript<T>(dynamicMember keyPath: KeyPath<EnclaveIdentity, T>) -> T { identity[keyPath: keyPath] }

    /// The enclave as last published by its queue.
    var snapshot: EnclaveSnapshot { published.withLock { $0 } }

    /// The published page counts and last activity alone: the supervisor reads them from every
    /// enclave each tick, without copying (and reference counting) the rest of the snapshot.
    var poolFigures: (pages: PageCounts, lastActivity: MonotonicInstant) {
        published.withLock { ($0.pages, $0.lastActivity) }
    }

    /// Publishes a new snapshot (the queue, after every change).
    func publish(_ snapshot: EnclaveSnapshot) { published.withLock { $0 = snapshot } }

    var logger: Logger {
        var logger = core.logger
        logger[metadataKey: "enclave"] = "\(identity.handle)"
        logger[metadataKey: "uid"] = "\(identity.owner.uid)"
        return logger
    }

    // MARK: Entry points (any queue)

    /// Runs `body` with the state on the queue, later; the enclave lives until then (the state
    /// refers back to it).
    func onQueue(_ body: @escaping @Sendable (EnclaveState) -> Void) {
        queue.async { self.state.withValue(body) }
    }

    /// Runs a client request (the socket loop). A request that needs no ioctl runs at once on the
    /// calling thread if the state is free and no request handed off earlier is still waiting,
    /// which saves a thread wake-up (measured: docs/benchmarks.md); any other is handed to the
    /// queue. Never waits: the queue may be running a flush that waits on a simulated EPC lock
    /// a stopped client holds.
    func submit(_ call: EnclaveCall) {
        let servedInline =
            handedOff.load(ordering: .acquiring) == 0
            && state.withValueIfAvailable { state in
                guard state.servesInline(call.request) else { return false }
                state.handle(call)
                return true
            } == true
        if servedInline { core.counters.add(.servedInline) } else { submitLater(call) }
    }

    /// Runs a request on the enclave's queue without waiting for it: one that may run an ioctl,
    /// one that found the enclave busy, or a viewer's STATS.
    func submitLater(_ call: EnclaveCall) {
        core.counters.add(.handedOff)
        handedOff.add(1, ordering: .relaxed)
        onQueue { state in
            state.handle(call)
            self.handedOff.subtract(1, ordering: .releasing)
        }
    }

    /// Adds a connection (ATTACH) and answers it.
    func attach(_ target: ReplyTarget) {
        onQueue { $0.attach(target) }
    }

    /// A connection closed: forget it; the last one to go unregisters the enclave.
    func detach(_ session: Session) {
        onQueue { $0.detach(session) }
    }

    /// Queues EMODT(TRIM) of up to `pages` of the oldest pooled pages and reports how many it took.
    func reclaim(pages: UInt64, reason: ReclaimReason, completion: @escaping @Sendable (UInt64) -> Void) {
        onQueue { completion($0.reclaim(pages: pages, reason: reason)) }
    }

    /// Shutdown: runs every queued request now and every later one at once.
    func drain(completion: @escaping @Sendable () -> Void) {
        onQueue { state in
            if state.phase == .active { state.act(state.flushPolicy.shutdown()) }
            completion()
        }
    }

    /// Closes the enclave's descriptor and returns its accounting (daemon exit).
    func close(reason: String, completion: @escaping @Sendable () -> Void) {
        onQueue { state in
            state.close(reason: reason)
            completion()
        }
    }

    /// New settings after a RELOAD; what is queued is flushed under the old batch settings.
    func apply(_ daemonSettings: DaemonSettings) {
        onQueue { $0.apply(EnclaveSettings(daemonSettings, uid: self.identity.owner.uid)) }
    }
}

/// The settings one enclave works with.
struct EnclaveSettings: Equatable {
    var flush: FlushPolicy.Configuration
    var poolEnabled: Bool
    var growth: GrowthPolicy
    /// The quotas of the enclave's owner.
    var quota: QuotaPolicy

    init(_ settings: DaemonSettings, uid: UInt32) {
        flush = settings.flush
        poolEnabled = settings.poolEnabled
        growth = settings.growth
        quota = settings.quota.policy(uid: uid)
    }
}

/// A completed request on its way back to its connection.
struct Completion: Sendable {
    let id: UInt64
    let verb: Verb
    let outcome: Result<ResponseBody, WireError>
    let silentOnSuccess: Bool
    /// REGISTER/ATTACH: the enclave the connection may now use.
    let attaching: EnclaveContext?
    /// REGISTER/ATTACH: the connection reserved a slot of its enclave limit for this request.
    let reservedSlot: Bool

    init(_ target: ReplyTarget, _ outcome: Result<ResponseBody, WireError>, attaching: EnclaveContext? = nil) {
        id = target.id
        verb = target.verb
        self.outcome = outcome
        silentOnSuccess = target.silentOnSuccess
        self.attaching = attaching
        reservedSlot = target.verb == .register || target.verb == .attach
    }
}
