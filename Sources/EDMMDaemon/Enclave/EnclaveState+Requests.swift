import Dispatch
import EDMMCore
import EDMMProtocol

/// The client verbs, on the enclave's queue or inline on the socket loop (`servesInline`).
extension EnclaveState {
    func handle(_ call: EnclaveCall) {
        let target = call.target
        guard phase == .active else {
            answer(target, .failure(WireError(.unknownEnclave, "enclave \(handle) was unregistered")))
            return
        }
        // Views do not make an enclave active: idle-first reclaim must not spare a watched enclave.
        if case .stats = call.request {} else { lastActivity = .now }
        do throws(WireError) {
            switch call.request {
            case .allocate(let request): answer(target, .success(try allocate(request, limits: target.session.limits.protocolLimits)))
            case .free(let request): answer(target, .success(try free(request.range)))
            case .relax(let request): answer(target, .success(try relax(request.range, request.permissions)))
            case .trim(let request): try queueWork(target, request.range, .trim)
            case .trimAccepted(let request): try queueWork(target, request.range, .remove)
            case .restrict(let request): try queueWork(target, request.range, .restrict(request.permissions))
            case .makeTCS(let request): try queueWork(target, request.range, .makeTCS)
            case .sync:
                answer(target, .success(.done(flushNow().reply)))
            case .unregister:
                act(flushPolicy.shutdown())
                let pages = ledger.counts.epcPages
                close(reason: "UNREGISTER from connection \(target.session.id)")
                answer(target, .success(.done(DoneReply(pages: pages, ioctls: 0, batchedRequests: 1))))
                return
            case .stats:
                answer(target, .success(.stats(stats())))
            case .hello, .register, .attach, .status, .enclaves, .reclaim, .reload, .metrics, .setScope, .dropScope, .scopes:
                throw WireError(.internalError, "\(target.verb) was routed to an enclave")
            }
        } catch {
            answer(target, .failure(error))
        }
        publish()
    }

    /// Whether `handle` can run `request` without an ioctl, so on the socket loop: the verbs that
    /// only change the ledger, when no page they name has work queued (which would flush first,
    /// `afterQueuedWork`), and a FREE only when the pool keeps its pages (else they are trimmed).
    /// STATS reads the EPCM, which can wait on a simulated EPC lock: never inline.
    func servesInline(_ request: Request) -> Bool {
        guard phase == .active else { return true }  // answered at once: unregistered
        switch request {
        case .allocate(let request):
            return request.offset == WireRange.anywhere || nothingQueued(in: WireRange(offset: request.offset, length: request.length))
        case .free(let request):
            return settings.poolEnabled && !identity.options.contains(.freshOnly) && nothingQueued(in: request.range)
        case .relax(let request): return nothingQueued(in: request.range)
        default: return false
        }
    }

    private func nothingQueued(in range: WireRange) -> Bool {
        // A range that is not the enclave's is refused before anything could flush.
        guard !queued.isEmpty, let pages = try? pages(range) else { return true }
        return !ledger.states(in: pages).contains { $0.value.isPending }
    }

    /// Sends one answer and counts it.
    func answer(_ target: ReplyTarget, _ outcome: Result<ResponseBody, WireError>) {
        if case .success = outcome { counters.record(target.verb, ok: true) } else { counters.record(target.verb, ok: false) }
        target.session.deliver(CollectionOfOne(Completion(target, outcome)))
    }

    /// The request's byte range as pages of this enclave, or the typed error.
    func pages(_ range: WireRange) throws(WireError) -> PageRange { try range.pageRange(elrangeSize: identity.size).get() }

    // MARK: Bookkeeping verbs

    func free(_ range: WireRange) throws(WireError) -> ResponseBody {
        let pages = try self.pages(range)
        try afterQueuedWork { () throws(LedgerError) in try ledger.free(pages, at: .now) }
        freshUnaccepted.remove(pages)
        if !settings.poolEnabled || identity.options.contains(.freshOnly) {
            // No lazy pool (or a fresh-only client, which EACCEPTs every page it is granted): the
            // pages go back at once, through the same RECLAIM notice as any reclaim, so the client
            // EACCEPTs and confirms them as usual.
            do {
                try ledger.reclaim(pages)
                enqueue(.trim, pages, origin: .reclaim(.poolThreshold))
            } catch {
                logger.error("FREE without a pool could not reclaim \(pages): \(error)")
            }
        }
        return .done(DoneReply(pages: pages.count))
    }

    func relax(_ range: WireRange, _ permissions: PagePermissions) throws(WireError) -> ResponseBody {
        let pages = try self.pages(range)
        try afterQueuedWork { () throws(LedgerError) in try ledger.relax(pages, adding: permissions) }
        return .done(DoneReply(pages: pages.count))
    }

    // MARK: ALLOCATE

    func allocate(_ request: AllocateRequest, limits: ProtocolLimits) throws(WireError) -> ResponseBody {
        let asked: AllocationRequest
        if request.offset == WireRange.anywhere {
            guard request.length > 0, request.length % Page.size == 0 else {
                throw WireError(.notAligned, "length \(request.length) must be a non-zero multiple of 4096")
            }
            asked = .anywhere(pages: request.length / Page.size)
        } else {
            let range = try pages(WireRange(offset: request.offset, length: request.length))
            try checkSegments(range, limits: limits)
            if ledger.states(in: range).contains(where: { $0.value.isPending }) { flushNow() }
            asked = .range(range)
        }
        let quota = settings.quota
        let growth = request.allowGrowth ? settings.growth : .disabled
        let grant: Grant
        do throws(AllocationError) {
            if case .anywhere(let count) = asked, ledger.placement(pages: count, permissions: request.permissions)?.fromPool == true {
                // Served from the pool: no fresh page, nothing to admit, no shared lock.
                grant = try ledger.allocate(
                    asked, permissions: request.permissions, quota: QuotaPolicy(), growth: growth,
                    usage: QuotaUsage(enclavePages: 0, uidPages: 0, machinePages: 0))
            } else {
                grant = try core.quotas.admit(handle, owner: QuotaBook.Owner(identity.owner)) {
                    (usage: QuotaUsage) throws(AllocationError) in
                    let grant = try ledger.allocate(asked, permissions: request.permissions, quota: quota, growth: growth, usage: usage)
                    return (grant, ledger.counts.epcPages)
                }
                chargedPages = ledger.counts.epcPages
            }
        } catch {
            throw WireError(error)
        }
        for range in grant.fresh { freshUnaccepted.insert(range) }
        return .allocate(
            AllocateReply(
                granted: WireRange(grant.range), permissions: request.permissions, reused: grant.reused.map { WireRange($0.range) },
                fresh: grant.fresh.map(WireRange.init)))
    }

    /// A fixed-range ALLOCATE over a fragmented region could need more reused/fresh ranges than a
    /// reply can carry: refuse it before anything changes.
    func checkSegments(_ range: PageRange, limits: ProtocolLimits) throws(WireError) {
        let fitInMessage = (limits.maxMessageBytes - 128) / 16  // 16 bytes per range on the wire
        let limit = min(limits.maxRangesPerList, fitInMessage / 2)
        var segments = 0
        var cursor = range.first
        for entry in ledger.states(in: range) {
            if entry.range.first > cursor { segments += 1 }
            segments += 1
            cursor = entry.range.end
        }
        if cursor < range.end { segments += 1 }
        guard segments > limit else { return }
        throw WireError(
            .invalidArgument,
            "\(WireRange(range)) spans \(segments) runs of different states, more than one reply can list (\(limit)); allocate it in parts",
            detail: .limit(limit: UInt64(limit), actual: UInt64(segments)))
    }

    // MARK: Reclaim

    func reclaim(pages wanted: UInt64, reason: ReclaimReason) -> UInt64 {
        // With no connection (a restored enclave not attached yet) nobody could honour the notice.
        guard phase == .active, wanted > 0, !sessions.isEmpty else { return 0 }
        let ranges = ledger.reclaimOldestPooled(pages: wanted)
        for range in ranges { enqueue(.trim, range, origin: .reclaim(reason)) }
        publish()
        return ranges.reduce(0) { $0 + $1.count }
    }
}
