import Dispatch
import EDMMCore
import EDMMProtocol
import SGXDevice

/// What one flush did, for the `done` replies.
struct FlushSummary {
    var ioctlCalls = 0
    var requests = 0
    var pages: UInt64 = 0

    /// The reply of SYNC: what the flush it triggered did (0 requests: nothing was queued).
    var reply: DoneReply {
        DoneReply(pages: pages, ioctls: UInt32(clamping: ioctlCalls), batchedRequests: UInt32(clamping: requests))
    }
}

extension EnclaveState {
    /// Runs every queued request now: the planner turns them into the fewest ioctls, each runs
    /// through the retrying runner, and the attribution answers each request for its own pages.
    /// Requests an ioctl never reached (another request's page failed first) are planned again,
    /// never failed for someone else's page.
    @discardableResult
    func flushNow() -> FlushSummary {
        // The window ends here, whoever flushed: a policy left collecting with its timer disarmed
        // would never flush the next request (a reply lost for good).
        timer?.source.schedule(deadline: .distantFuture)
        flushPolicy.flushed()
        guard !queued.isEmpty, let device else { return FlushSummary() }
        let work = queued
        queued.removeAll()
        var summary = FlushSummary(requests: work.count, pages: work.reduce(0) { $0 + $1.request.range.count })
        var results: [RequestID: Result<Void, WireError>] = [:]
        var pending = work.map(\.request)
        while !pending.isEmpty {
            let plan: [PlannedIoctl]
            do {
                plan = try planner.plan(pending)
            } catch {
                // The ledger never queues two requests on one page; this is a bug, reported as such.
                logger.error("cannot plan the queued requests: \(error)")
                for request in pending {
                    try? ledger.revert(request.operation, request.range)
                    results[request.id] = .failure(WireError(.internalError, "edmmd could not plan this request: \(error)"))
                }
                break
            }
            // Replans (requests an earlier ioctl never reached) are retries, not part of the bound.
            if pending.count == work.count { counters.ioctlLowerBound += lowerBound(of: pending, planned: plan) }
            pending = []
            for ioctl in plan {
                let outcome = runIoctl(ioctl.operation, ioctl.range, on: device)
                summary.ioctlCalls += outcome.ioctlCalls
                pending += record(outcome, of: ioctl, into: &results)
            }
        }
        core.instruments.recordFlush(requests: work.count)
        counters.flushes += 1
        counters.largestFlush = max(counters.largestFlush, UInt64(work.count))
        answer(work, results, summary)
        publish()
        return summary
    }

    /// Runs one ioctl through the retrying runner, and counts it.
    func runIoctl(_ operation: QueuedOperation, _ range: PageRange, on device: any OpenedEnclave) -> IoctlRunResult {
        let kind = WireIoctl(operation)
        core.instruments.recordIoctl(kind, pages: range.count)
        let outcome = core.runner.run(EnclaveIoctl(operation), pages: range, on: device.device)
        counters.record(outcome, kind: kind)
        core.counters.record(outcome, kind: kind)
        return outcome
    }

    /// One ioctl per maximal contiguous run of one operation: the batched plan's length (the
    /// plan at hand when batching, so the hot path plans once).
    private func lowerBound(of requests: [QueuedRequest], planned plan: [PlannedIoctl]) -> UInt64 {
        if planner.batching { return UInt64(plan.count) }
        return UInt64((try? BatchPlanner(batching: true).plan(requests))?.count ?? plan.count)
    }

    /// Applies one ioctl's outcome to the ledger and the results; returns the requests it never
    /// reached.
    private func record(
        _ outcome: IoctlRunResult, of ioctl: PlannedIoctl, into results: inout [RequestID: Result<Void, WireError>]
    ) -> [QueuedRequest] {
        do {
            let attribution = try ioctl.attribute(outcome.reported)
            try ledger.apply(attribution, of: ioctl)
            if let completed = attribution.completed { freshUnaccepted.remove(completed) }
            for id in attribution.succeeded { results[id] = .success(()) }
            if let failure = attribution.failed {
                results[failure.request] = .failure(WireError(failure))
                logger.notice("ioctl failed", metadata: ["ioctl": "\(ioctl)", "outcome": "\(outcome)"])
            }
            return attribution.unreached
        } catch {
            // Only a device that breaks the ioctl contract gets here.
            logger.error("inconsistent ioctl outcome", metadata: ["ioctl": "\(ioctl)", "outcome": "\(outcome)", "error": "\(error)"])
            for part in ioctl.parts {
                try? ledger.revert(ioctl.operation, part.range)
                results[part.request] = .failure(WireError(.internalError, "the device returned an impossible result: \(outcome)"))
            }
            return []
        }
    }

    /// Answers the flushed client requests (one delivery per connection) and sends the RECLAIM
    /// notices of edmmd's own trims.
    private func answer(_ work: [QueuedWork], _ results: [RequestID: Result<Void, WireError>], _ summary: FlushSummary) {
        var deliveries: [UInt64: (session: Session, completions: [Completion])] = [:]
        var reclaimed: [ReclaimReason: RangeSet] = [:]
        for item in work {
            let result = results[item.request.id] ?? .failure(WireError(.internalError, "the flush did not resolve this request"))
            switch item.origin {
            case .client(let target):
                let outcome = result.map { _ in
                    ResponseBody.done(
                        DoneReply(
                            pages: item.request.range.count, ioctls: UInt32(clamping: summary.ioctlCalls),
                            batchedRequests: UInt32(clamping: summary.requests)))
                }
                if case .success = outcome { counters.record(target.verb, ok: true) } else { counters.record(target.verb, ok: false) }
                deliveries[target.session.id, default: (target.session, [])].completions.append(Completion(target, outcome))
            case .reclaim(let reason):
                let trimmed: PageRange
                switch result {
                case .success: trimmed = item.request.range
                case .failure(let error):
                    // An ioctl that failed part-way (SGX_EPC_PAGE_CONFLICT, a page busy beyond the
                    // retries) trimmed the pages before the failing one: they need their notice too.
                    guard case .kernel(_, _, let countBytes, _) = error.detail, countBytes >= Page.size else { continue }
                    trimmed = PageRange(first: item.request.range.first, count: countBytes >> Page.shift)
                }
                reclaimed[reason, default: RangeSet()].insert(trimmed)
                counters.reclaimedPages += trimmed.count
                core.counters.add(.reclaimedPages, trimmed.count)
            }
        }
        for (session, completions) in deliveries.values { session.deliver(completions) }
        for (reason, ranges) in reclaimed.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            sendReclaimNotices(Array(ranges), reason: reason)
        }
    }

    /// RECLAIM_NOTICE to the registrar (or an attached connection), in as many notices as the
    /// range-list limit needs.
    func sendReclaimNotices(_ ranges: [PageRange], reason: ReclaimReason) {
        guard let session = noticeTarget else { return }
        let perNotice = session.limits.protocolLimits.maxRangesPerList
        var start = 0
        while start < ranges.count {
            let chunk = ranges[start..<min(start + perNotice, ranges.count)].map(WireRange.init)
            session.push(.reclaim(ReclaimNotice(enclave: handle, reason: reason, ranges: chunk)))
            core.counters.add(.reclaimNotices)
            start += perNotice
        }
        logger.debug("reclaim notice", metadata: ["reason": "\(reason)", "pages": "\(ranges.reduce(0) { $0 + $1.count })"])
    }
}
