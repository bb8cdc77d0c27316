import Dispatch
import EDMMCore
import EDMMProtocol
import Logging

/// The work of one enclave: its ledger, device, batch queue, connections and counters. Only the
/// thread holding `EnclaveContext.state` reaches it: the enclave's queue, or the socket loop
/// serving a request inline (`servesInline`); it is not Sendable, so no Dispatch closure can
/// carry it anywhere else.
final class EnclaveState {
    unowned let context: EnclaveContext

    enum Phase { case registering, active, closed }
    var phase = Phase.registering
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
    /// The batch window's timer, made when a window first opens: most of a host's enclaves
    /// never batch, and a timer source is about 300 bytes each.
    private(set) var timer: SendableSource<any DispatchSourceTimer>?

    /// A request waiting in the queue: the client's, or edmmd's own (a reclaim).
    struct QueuedWork {
        enum Origin {
            case client(ReplyTarget)
            case reclaim(ReclaimReason)
        }
        var request: QueuedRequest
        var origin: Origin
    }

    init(_ context: EnclaveContext, device: any OpenedEnclave, settings: EnclaveSettings, now: MonotonicInstant) {
        self.context = context
        self.device = device
        let handle = context.identity.handle
        ledger = EnclaveLedger(managedRange: context.identity.managed, seed: handle &* 0x9E37_79B9_7F4A_7C15 | 1)
        self.settings = settings
        flushPolicy = FlushPolicy(settings.flush)
        planner = BatchPlanner(batching: settings.flush.batching)
        lastActivity = now
    }

    var identity: EnclaveIdentity { context.identity }
    var handle: EnclaveHandle { context.identity.handle }
    var core: DaemonCore { context.core }
    var logger: Logger { context.logger }

    func timerFired() {
        guard phase == .active else { return }
        act(flushPolicy.timerFired(now: .now))
    }

    private func batchTimer() -> SendableSource<any DispatchSourceTimer> {
        if let timer { return timer }
        let made = SendableSource<any DispatchSourceTimer>.timer(on: context.queue)
        made.activateIdle { [weak context] in context?.state.withValue { $0.timerFired() } }
        timer = made
        return made
    }

    /// Performs what the flush policy asks.
    func act(_ action: FlushPolicy.Action) {
        switch action {
        case .none: break
        case .armTimer(let deadline): batchTimer().source.schedule(deadline: deadline.dispatchTime)
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

    /// Runs the ledger transition `body`; if it refuses because a page has work queued, flushes
    /// that work and tries once more, so that requests take effect in arrival order. A refusal
    /// is thrown as the client sees it.
    func afterQueuedWork<T>(_ body: () throws(LedgerError) -> T) throws(WireError) -> T {
        do throws(LedgerError) {
            do throws(LedgerError) {
                return try body()
            } catch {
                guard case .pendingWork = error else { throw error }
                flushNow()
                return try body()
            }
        } catch {
            throw WireError(error)
        }
    }

    /// Records a changed charge and publishes a fresh snapshot.
    func publish() {
        let pages = ledger.counts.epcPages
        if phase == .active, pages != chargedPages {
            core.quotas.charge(handle, owner: QuotaBook.Owner(identity.owner), pages: pages)
            chargedPages = pages
        }
        context.publish(
            EnclaveSnapshot(
                identity: identity, pages: ledger.counts, quotaPages: settings.quota.enclaveLimit, connections: sessions.count,
                lastActivity: lastActivity, counters: counters))
        core.fdStore?.enclaveChanged(context)
    }

    /// New settings after a RELOAD; what is queued is flushed under the old batch settings.
    func apply(_ new: EnclaveSettings) {
        if new.flush != settings.flush, phase == .active {
            flushNow()
            flushPolicy = FlushPolicy(new.flush)
            planner = BatchPlanner(batching: new.flush.batching)
        }
        settings = new
        publish()
    }

    /// The connection RECLAIM notices go to: the registrar while it is attached, else any other.
    var noticeTarget: Session? {
        if let registrarID, let session = sessions[registrarID] { return session }
        return sessions.values.min { $0.id < $1.id }
    }

    func attach(_ target: ReplyTarget) {
        guard phase == .active else {
            target.session.deliver([
                Completion(target, .failure(WireError(.unknownEnclave, "enclave \(handle) was unregistered")))
            ])
            return
        }
        sessions[target.session.id] = target.session
        publish()
        let reply = AttachReply(
            base: identity.base, size: identity.size, label: identity.label, device: identity.device,
            managed: WireRange(identity.managed))
        target.session.deliver([Completion(target, .success(.attach(reply)), attaching: context)])
        if !noticesOwed.isEmpty {
            sendReclaimNotices(noticesOwed, reason: .poolThreshold)
            noticesOwed = []
        }
    }

    func detach(_ session: Session) {
        guard sessions.removeValue(forKey: session.id) != nil else { return }
        if registrarID == session.id { registrarID = nil }
        // Stopping with the FD store: the enclave outlives its connections (the next daemon takes
        // it over); the shutdown records and closes it.
        if sessions.isEmpty && phase == .active && !(core.isShuttingDown && core.fdStore != nil) {
            close(reason: "its last connection closed")
        } else {
            publish()
        }
    }

    /// Unregisters: drops queued work (nobody is left to answer, or the caller flushed first),
    /// closes the descriptor, and returns every charged page.
    func close(reason: String) {
        guard phase != .closed else { return }
        // Leaving the registry may drop the enclave's last reference: keep it until the end.
        let context = self.context
        let wasActive = phase == .active
        phase = .closed
        let dropped = queued.count
        queued.removeAll()
        timer?.source.cancel()
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
            core.fdStore?.enclaveClosed(context)
            core.counters.add(.enclavesUnregistered)
            logger.info(
                "enclave unregistered", metadata: ["reason": "\(reason)", "pages": "\(ledger.counts.epcPages)", "dropped": "\(dropped)"])
        }
    }
}
