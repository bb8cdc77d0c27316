import EDMMCore
import EDMMProtocol
import SGXDevice

/// TRIM, TRIM_ACCEPTED, RESTRICT and MAKE_TCS, and what REGISTER's options for a client that sees
/// only the host side change about them (docs/protocol.md, "Clients that see only the host side").
extension EnclaveState {
    /// The ledger queues the pages and the flush answers. With implicit commit, the holes of the
    /// range are first recorded as committed; with kernel errors, a request the ledger refuses for
    /// the pages' states runs on the device as asked and gets the kernel's answer.
    func queueWork(_ target: ReplyTarget, _ range: WireRange, _ operation: QueuedOperation) throws(WireError) {
        let pages = try self.pages(range)
        if identity.options.contains(.implicitCommit), operation != .remove { try commitImplicitly(pages) }
        do throws(WireError) {
            try afterQueuedWork { () throws(LedgerError) in try queueInLedger(operation, pages) }
        } catch {
            guard identity.options.contains(.kernelErrors), error.code == .invalidPageState else { throw error }
            runAsAsked(target, operation, pages)
            return
        }
        enqueue(operation, pages, origin: .client(target))
    }

    private func queueInLedger(_ operation: QueuedOperation, _ pages: PageRange) throws(LedgerError) {
        switch operation {
        case .trim: try ledger.trim(pages)
        case .remove: try ledger.trimAccepted(pages)
        case .restrict(let permissions): try ledger.restrict(pages, to: permissions)
        case .makeTCS: try ledger.makeTCS(pages)
        }
    }

    /// Records the holes of `pages` as committed, since the enclave may have grown into them by
    /// fault-time EAUG, which its host never sees: on a simulated device only the pages its EPCM
    /// holds, in the state it shows (as adopted pages); on the kernel's, which offers no query,
    /// every hole as the RW page EAUG makes, trusting the client as with adopted pages. The
    /// enclave's committed figure is then a lower bound (`EnclaveIdentity.committedIsLowerBound`).
    private func commitImplicitly(_ pages: PageRange) throws(WireError) {
        var holes: [PageRange] = []
        var cursor = pages.first
        for entry in ledger.states(in: pages) {
            if entry.range.first > cursor { holes.append(PageRange(first: cursor, end: entry.range.first)) }
            cursor = entry.range.end
        }
        if cursor < pages.end { holes.append(PageRange(first: cursor, end: pages.end)) }
        guard !holes.isEmpty else { return }
        let runs = try AdoptedState.runs(holes, in: device?.epcm)
        do throws(LedgerError) {
            for run in runs {
                try ledger.adopt(run.range, as: run.state)
                if case .committed(_, unaccepted: true) = run.state { freshUnaccepted.insert(run.range) }
                counters.implicitlyCommitted += run.range.count
            }
        } catch {
            throw WireError(error)
        }
    }

    /// Runs `operation` on the device for a kernel-errors client whose request the ledger refused
    /// (REMOVE_PAGES of pages never trimmed, RESTRICT of a TCS page ...), after everything queued
    /// before it, and answers with the kernel's errno, count and result. The ledger follows the
    /// pages the device changed.
    private func runAsAsked(_ target: ReplyTarget, _ operation: QueuedOperation, _ pages: PageRange) {
        flushNow()
        guard let device else {
            answer(target, .failure(WireError(.enclaveUnavailable, "enclave \(handle) has no device")))
            return
        }
        let outcome = runIoctl(operation, pages, on: device)
        let done = min(outcome.bytesDone >> Page.shift, pages.count)
        if done > 0 {
            let changed = PageRange(first: pages.first, count: done)
            do throws(LedgerError) {
                try ledger.follow(operation, doneOn: changed)
            } catch {
                logger.error("the ledger cannot follow the device", metadata: ["operation": "\(operation)", "error": "\(error)"])
            }
            freshUnaccepted.remove(changed)
        }
        guard outcome.isComplete else {
            let failure = RequestFailure(
                request: RequestID(0), operation: operation, errno: outcome.errno, result: outcome.result ?? 0, count: done << Page.shift)
            answer(target, .failure(WireError(failure)))
            return
        }
        answer(target, .success(.done(DoneReply(pages: pages.count, ioctls: UInt32(clamping: outcome.ioctlCalls), batchedRequests: 1))))
    }
}
