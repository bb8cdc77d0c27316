import EDMMClient
import EDMMCore
import EDMMProtocol
import SGXDevice

extension SimulatedEnclaveHost {
    /// One event of connection `generation`, on the host's event task.
    func receive(_ event: ConnectionEvent, generation: Int) async {
        switch event {
        case .push(let push):
            switch push.push {
            case .reclaim where generation < state.withLock({ $0.firstGenerationOfRegistration }):
                // From an edmmd that died and lost the enclave: the re-registration found those
                // pages (EACCEPT probes) and gave them back already.
                break
            case .reclaim(let notice) where notice.enclave == handle:
                await honour(notice)
            case .reclaim(let notice):
                note("RECLAIM_NOTICE for enclave \(notice.enclave), which this connection did not register")
            case .shutdown(let notice):
                noteShutdown(notice, generation: generation)
                if reconnectPolicy == nil { note("edmmd is shutting down\(notice.restarting ? " (restarting)" : ""): \(notice.message)") }
            }
        case .fireAndForgetFailed(let id, let verb, let error):
            note("request \(id) (verb \(verb)) failed: \(error)")
        case .unexpectedReply(let id, let verb):
            note("edmmd answered request \(id) (verb \(verb)), which was not in flight")
        case .closed(let error):
            connectionClosed(generation: generation, error)
        }
    }

    /// edmmd already ran EMODT(TRIM) on these pool pages: enter the enclave, check that every
    /// page is one it freed, EACCEPT(TRIM|MODIFIED) each, and send TRIM_ACCEPTED from inside
    /// (an OCALL) before leaving.
    private func honour(_ notice: ReclaimNotice) async {
        let ranges: [PageRange]
        do throws(EnclaveHostError) {
            ranges = try pageRanges(notice.ranges)
        } catch {
            return note("RECLAIM_NOTICE refused: \(error)")
        }
        let verdict: HostSafetyViolation? = state.withLock { s in
            do throws(HostSafetyViolation) {
                try s.tracker.admitReclaim(ranges)
                s.stats.reclaimNotices += 1
                s.stats.reclaimedPages += ranges.reduce(0) { $0 + $1.count }
                return nil
            } catch {
                s.stats.violations.append(error)
                return error
            }
        }
        if let verdict { return note("RECLAIM_NOTICE refused: \(verdict)") }
        cpu.enter()
        var accepted: [PageRange] = []
        for range in ranges {
            do throws(EnclaveHostError) {
                try accept(range, flags: [.pageType(.trim), .modified], leaf: "EACCEPT(TRIM|MODIFIED)")
                state.withLock { $0.tracker.trimAccepted(range) }
                accepted.append(range)
            } catch {
                note("RECLAIM_NOTICE: \(error)")
            }
        }
        let submission: Submission?
        let handle = self.handle
        do throws(EnclaveHostError) {
            submission = accepted.isEmpty ? nil : try await send(accepted.map { trimAcceptedRequest($0, handle: handle) })
        } catch {
            submission = nil
            if reconnectPolicy != nil { restoreBacklog(accepted) } else { note("TRIM_ACCEPTED after RECLAIM_NOTICE: \(error)") }
        }
        cpu.exit()
        guard let submission else { return }
        for (range, reply) in zip(accepted, await submission.replies()) {
            // A host that reconnects sends it again with its next batch.
            if case .failure(let error) = reply, reconnectPolicy != nil, Self.isConnectionLoss(error) {
                restoreBacklog([range])
            } else {
                finishTrimAccepted(range, reply)
            }
        }
    }
}
