import Dispatch
import EDMMCore
import EDMMProtocol
import Logging
import SGXDevice
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

/// One registered enclave: its ledger, device, batch queue and counters.
///
/// Concurrency: everything below "queue-confined" belongs to `queue`, a serial queue of this
/// enclave alone; requests of every connection that uses the enclave run there in arrival order,
/// and so do its flushes (ioctls), its batch timer and its reclaims. Other queues reach it only
/// through the methods marked "any queue", which hop onto `queue`. What they may read directly
/// are the immutable properties and `snapshot`, a copy published after every change.
final class EnclaveContext: @unchecked Sendable {
    let handle: EnclaveHandle
    let queue: DispatchQueue
    let label: String
    /// The registering peer; the enclave belongs to its uid.
    let owner: PeerCredentials
    let base: UInt64
    let size: UInt64
    let managed: PageRange
    let deviceKind: WireDeviceKind
    let core: DaemonCore
    let timer: any DispatchSourceTimer
    private let published: Mutex<EnclaveSnapshot>

    // MARK: Queue-confined state

    enum State { case registering, active, closed }
    var state = State.registering
    /// nil once closed: dropping the last reference closes the descriptor.
    var device: (any OpenedEnclave)?
    var ledger: EnclaveLedger
    /// This enclave's copy of the live settings (no shared lock on the request path); RELOAD
    /// replaces it through `apply`.
    var settings: EnclaveSettings
    /// The pages last charged to the quota book.
    var chargedPages: UInt64 = 0
    var flushPolicy: FlushPolicy
    var planner: BatchPlanner
    /// Requests waiting for the next flush, in arrival order.
    var queued: [QueuedWork] = []
    var nextRequestID: UInt64 = 1
    /// Connections that registered or attached the enclave, by session id (`registrarID` names
    /// the registering one while it is open).
    var sessions: [UInt64: Session] = [:]
    var registrarID: UInt64?
    var counters = EnclaveCounters()
    /// Pages granted fresh that the client may not have EACCEPTed yet (for the EPCM comparison).
    var freshUnaccepted = RangeSet()
    var lastActivity: MonotonicInstant
    /// Pool pages a previous daemon reclaimed before it died, whose RECLAIM_NOTICE goes to the
    /// first connection that attaches the restored enclave.
    var noticesOwed: [PageRange] = []

    /// A request waiting in the queue: the client's, or edmmd's own (a reclaim).
    struct QueuedWork {
        enum Origin {
            case client(ReplyTarget)
            case reclaim(ReclaimReason)
        }
        var request: QueuedRequest
        var origin: Origin
    }

    init(
        handle: EnclaveHandle, label: String, owner: PeerCredentials, base: UInt64, size: UInt64, managed: PageRange,
        device: any OpenedEnclave, core: DaemonCore
    ) {
        self.handle = handle
        self.label = label
        self.owner = owner
        self.base = base
        self.size = size
        self.managed = managed
        self.core = core
        self.device = device
        deviceKind = device.kind
        queue = DispatchQueue(label: "edmmd.enclave.\(handle)")
        ledger = EnclaveLedger(managedRange: managed, seed: handle &* 0x9E37_79B9_7F4A_7C15 | 1)
        settings = EnclaveSettings(core.settings, uid: owner.uid)
        flushPolicy = FlushPolicy(settings.flush)
        planner = BatchPlanner(batching: settings.flush.batching)
        lastActivity = .now
        timer = DispatchSource.makeTimerSource(queue: queue)
        published = Mutex(
            EnclaveSnapshot(
                handle: handle, label: label, owner: owner, device: device.kind, base: base, size: size, managed: managed,
                pages: PageCounts(), quotaPages: settings.quota.enclaveLimit, connections: 0,
                lastActivity: lastActivity, counters: EnclaveCounters()))
        timer.setEventHandler { @Sendable [weak self] in self?.timerFired() }
        timer.schedule(deadline: .distantFuture)
        timer.activate()
    }

    /// The enclave as last published by its queue (any queue).
    var snapshot: EnclaveSnapshot { published.withLock { $0 } }

    var logger: Logger {
        var logger = core.logger
        logger[metadataKey: "enclave"] = "\(handle)"
        return logger
    }

    // MARK: Entry points (any queue)

    /// Runs a client request on the enclave's queue, called from the session's queue. Synchronous:
    /// an idle enclave queue then runs the request on the session's own thread, which saves a
    /// thread wakeup per request (measured: docs/benchmarks.md). It cannot deadlock: an enclave
    /// queue never waits for a session queue (its answers go back with `Session.deliver`, async).
    func submit(_ call: EnclaveCall) {
        queue.sync { self.handle(call) }
    }

    /// Runs a request on the enclave's queue without waiting for it: for a connection that does
    /// not use the enclave (a viewer's STATS), which must not stall behind the enclave's work.
    func submitLater(_ call: EnclaveCall) {
        queue.async { self.handle(call) }
    }

    /// Adds a connection (ATTACH) and answers it.
    func attach(_ target: ReplyTarget) {
        queue.async { self.attachOnQueue(target) }
    }

    /// A connection closed: forget it; the last one to go unregisters the enclave.
    func detach(_ session: Session) {
        queue.async { self.detachOnQueue(session) }
    }

    /// Queues EMODT(TRIM) of up to `pages` of the oldest pooled pages and reports how many it took.
    func reclaim(pages: UInt64, reason: ReclaimReason, completion: @escaping @Sendable (UInt64) -> Void) {
        queue.async { completion(self.reclaimOnQueue(pages: pages, reason: reason)) }
    }

    /// Shutdown: runs every queued request now and every later one at once.
    func drain(completion: @escaping @Sendable () -> Void) {
        queue.async {
            if self.state == .active { self.act(self.flushPolicy.shutdown()) }
            completion()
        }
    }

    /// Closes the enclave's descriptor and returns its accounting (daemon exit).
    func close(reason: String, completion: @escaping @Sendable () -> Void) {
        queue.async {
            self.closeOnQueue(reason: reason)
            completion()
        }
    }

    /// New settings after a RELOAD; what is queued is flushed under the old batch settings.
    func apply(_ daemonSettings: DaemonSettings) {
        queue.async {
            let new = EnclaveSettings(daemonSettings, uid: self.owner.uid)
            if new.flush != self.settings.flush, self.state == .active {
                self.flushNow()
                self.flushPolicy = FlushPolicy(new.flush)
                self.planner = BatchPlanner(batching: new.flush.batching)
            }
            self.settings = new
            self.publish()
        }
    }

    // MARK: Queue-confined helpers

    func timerFired() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard state == .active else { return }
        act(flushPolicy.timerFired(now: .now))
    }

    /// Performs what the flush policy asks.
    func act(_ action: FlushPolicy.Action) {
        switch action {
        case .none: break
        case .armTimer(let deadline): timer.schedule(deadline: deadline.dispatchTime)
        case .flush: flushNow()
        }
    }

    /// Queues one ioctl's worth of work and lets the flush policy decide when it runs.
    func enqueue(_ operation: QueuedOperation, _ range: PageRange, origin: QueuedWork.Origin) {
        let request = QueuedRequest(id: RequestID(nextRequestID), operation: operation, range: range)
        nextRequestID += 1
        queued.append(QueuedWork(request: request, origin: origin))
        act(flushPolicy.requestQueued(pages: range.count, now: .now))
    }

    /// Runs `body`; if it refuses because a page has work queued, flushes that work and tries once
    /// more, so that requests take effect in arrival order.
    func afterQueuedWork<T>(_ body: () throws(LedgerError) -> T) throws(LedgerError) -> T {
        do throws(LedgerError) {
            return try body()
        } catch {
            guard case .pendingWork = error else { throw error }
            flushNow()
            return try body()
        }
    }

    /// Records a changed charge and publishes a fresh snapshot.
    func publish() {
        let pages = ledger.counts.epcPages
        if state == .active, pages != chargedPages {
            core.quotas.charge(handle, uid: owner.uid, pages: pages)
            chargedPages = pages
        }
        let snapshot = EnclaveSnapshot(
            handle: handle, label: label, owner: owner, device: deviceKind, base: base, size: size, managed: managed,
            pages: ledger.counts, quotaPages: settings.quota.enclaveLimit,
            connections: sessions.count, lastActivity: lastActivity, counters: counters)
        published.withLock { $0 = snapshot }
        core.fdStore?.enclaveChanged(self)
    }

    /// The connection RECLAIM notices go to: the registrar while it is attached, else any other.
    var noticeTarget: Session? {
        if let registrarID, let session = sessions[registrarID] { return session }
        return sessions.values.min { $0.id < $1.id }
    }

    func attachOnQueue(_ target: ReplyTarget) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard state == .active else {
            target.session.deliver([
                Completion(target, .failure(WireError(.unknownEnclave, "enclave \(handle) was unregistered")))
            ])
            return
        }
        sessions[target.session.id] = target.session
        publish()
        let reply = AttachReply(base: base, size: size, label: label, device: deviceKind, managed: WireRange(managed))
        target.session.deliver([Completion(target, .success(.attach(reply)), attaching: self)])
        if !noticesOwed.isEmpty {
            sendReclaimNotices(noticesOwed, reason: .poolThreshold)
            noticesOwed = []
        }
    }

    func detachOnQueue(_ session: Session) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard sessions.removeValue(forKey: session.id) != nil else { return }
        if registrarID == session.id { registrarID = nil }
        // Stopping with the FD store: the enclave outlives its connections (the next daemon takes
        // it over); the shutdown records and closes it.
        if sessions.isEmpty && state == .active && !(core.isShuttingDown && core.fdStore != nil) {
            closeOnQueue(reason: "its last connection closed")
        } else {
            publish()
        }
    }

    /// Unregisters: drops queued work (nobody is left to answer, or the caller flushed first),
    /// closes the descriptor, and returns every charged page.
    func closeOnQueue(reason: String) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard state != .closed else { return }
        let wasActive = state == .active
        state = .closed
        let dropped = queued.count
        queued.removeAll()
        timer.cancel()
        // The descriptor is closed before the enclave leaves the registry: whoever sees it gone
        // (STATUS, a test) also sees its descriptor closed.
        device?.close()
        device = nil
        core.registry.remove(handle)
        core.quotas.release(handle)
        for session in sessions.values { session.forget(handle) }
        sessions.removeAll()
        registrarID = nil
        publish()
        if wasActive {
            core.fdStore?.enclaveClosed(self)
            core.counters.add(.enclavesUnregistered)
            logger.info(
                "enclave unregistered", metadata: ["reason": "\(reason)", "pages": "\(ledger.counts.epcPages)", "dropped": "\(dropped)"])
        }
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
