import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import SGXDevice
import SGXSimulator

/// After the exit: each reply checked against what was asked, then EACCEPTed as it calls for.
extension SimulatedEnclaveHost {
    // MARK: After the reply

    func complete(
        _ operation: HostOperation, _ reply: Result<Reply?, EDMMClientError>, saved: [(range: PageRange, state: HostPage?)],
        registration: Int
    ) -> Result<HostOutcome, EnclaveHostError> {
        let body: ResponseBody?
        switch reply {
        case .failure(let error):
            state.withLock { $0.tracker.restore(saved) }
            settleCompletedPart(of: operation, error)
            return .failure(.client(error))
        case .success(let r):
            body = r?.body
        }
        if case .done(let done)? = body { state.withLock { $0.stats.noteDone(done) } }
        do throws(EnclaveHostError) {
            switch operation {
            case .allocate(let pages, _):
                return .success(try takeAllocation(body, asked: .count(pages), registration: registration))
            case .allocateAt(let range):
                return .success(try takeAllocation(body, asked: .range(range), registration: registration))
            case .free, .relax:
                return .success(.done(try doneReply(body, allowMissing: true)))
            case .trim(let range):
                let done = try doneReply(body)
                try accept(range, flags: [.pageType(.trim), .modified], leaf: "EACCEPT(TRIM|MODIFIED)")
                state.withLock { s in
                    s.tracker.trimAccepted(range)
                    s.trimAcceptedBacklog.append(range)
                }
                return .success(.done(done))
            case .restrict(let range, let permissions):
                let done = try doneReply(body)
                try accept(range, flags: [.pageType(.reg), .pr, SecInfoFlags(permissions: permissions)], leaf: "EACCEPT(REG|PR)")
                state.withLock { $0.tracker.restricted(range) }
                return .success(.done(done))
            case .makeTCS(let page):
                let range = PageRange(first: page, count: 1)
                let done = try doneReply(body)
                try accept(range, flags: [.pageType(.tcs), .modified], leaf: "EACCEPT(TCS|MODIFIED)")
                state.withLock { $0.tracker.becameTCS(range) }
                return .success(.done(done))
            }
        } catch {
            return .failure(error)
        }
    }

    /// An ioctl that failed after `count` bytes of this request changed those pages, and edmmd's
    /// ledger has them done: the enclave takes them as done too (with the EACCEPT their change
    /// calls for), so that its record, the ledger and the EPCM stay equal; the rest of the range
    /// is back where it was.
    func settleCompletedPart(of operation: HostOperation, _ error: EDMMClientError) {
        guard case .kernel(_, _, let countBytes, _)? = error.wireError?.detail, countBytes >= Page.size else { return }
        let done = countBytes >> Page.shift
        do throws(EnclaveHostError) {
            switch operation {
            case .trim(let range):
                let part = PageRange(first: range.first, count: min(done, range.count))
                state.withLock { s in try? s.tracker.trim(part) }
                try accept(part, flags: [.pageType(.trim), .modified], leaf: "EACCEPT(TRIM|MODIFIED)")
                state.withLock { s in
                    s.tracker.trimAccepted(part)
                    s.trimAcceptedBacklog.append(part)
                }
            case .restrict(let range, let permissions):
                let part = PageRange(first: range.first, count: min(done, range.count))
                state.withLock { s in try? s.tracker.restrict(part, to: permissions) }
                try accept(part, flags: [.pageType(.reg), .pr, SecInfoFlags(permissions: permissions)], leaf: "EACCEPT(REG|PR)")
                state.withLock { $0.tracker.restricted(part) }
            default:
                break
            }
        } catch {
            note("the part of \(operation) edmmd completed before its ioctl failed: \(error)")
        }
    }

    func doneReply(_ body: ResponseBody?, allowMissing: Bool = false) throws(EnclaveHostError) -> DoneReply? {
        switch body {
        case .done(let done)?: return done
        case nil where allowMissing: return nil
        default: throw .client(.protocolViolation("expected a done reply"))
        }
    }

    func doneReply(_ body: ResponseBody?) throws(EnclaveHostError) -> DoneReply {
        guard case .done(let done)? = body else { throw .client(.protocolViolation("expected a done reply")) }
        return done
    }

    func takeAllocation(_ body: ResponseBody?, asked: AskedPages, registration: Int) throws(EnclaveHostError) -> HostOutcome {
        guard case .allocate(let reply)? = body else { throw .client(.protocolViolation("ALLOCATE answered without a grant")) }
        let granted = try pageRanges([reply.granted])[0]
        let fresh = try pageRanges(reply.fresh)
        let reused = try pageRanges(reply.reused)
        try takeGrant(granted: granted, fresh: fresh, reused: reused, asked: asked, registration: registration)
        let freshPages = fresh.reduce(0) { $0 + $1.count }
        return .allocated(granted, freshPages: freshPages, reusedPages: granted.count - freshPages)
    }

    /// Checks a grant against the enclave's own record, then EACCEPTs its fresh pages (each one
    /// faults, and the kernel EAUGs it). Reused pages are already accepted and are not touched.
    /// All of it happens under the state lock, so that a re-registration, which takes the record
    /// under the same lock, sees the whole grant accepted or none of it; a grant answered under an
    /// earlier `registration` (its edmmd has died since) is void and refused as interrupted.
    func takeGrant(
        granted: PageRange, fresh: [PageRange], reused: [PageRange], asked: AskedPages?, registration: Int? = nil
    ) throws(EnclaveHostError) {
        let outcome: Result<Void, EnclaveHostError> = state.withLock { s in
            if let registration, registration != s.registrations { return .failure(.interrupted(operation: "ALLOCATE")) }
            do throws(HostSafetyViolation) {
                try s.tracker.admitGrant(granted: granted, fresh: fresh, reused: reused, asked: asked, permissions: .rw)
            } catch {
                s.stats.violations.append(error)
                return .failure(.refused(error))
            }
            if blueprint.prefaultFreshPages { prefault(fresh) }
            do throws(EnclaveHostError) {
                for range in fresh { try accept(range, flags: [.pageType(.reg), .pending, .r, .w], leaf: "EACCEPT(REG|PENDING|RW)") }
            } catch {
                return .failure(error)
            }
            let freshPages = fresh.reduce(0) { $0 + $1.count }
            s.stats.freshPagesAccepted += freshPages
            s.stats.reusedPages += granted.count - freshPages
            return .success(())
        }
        try outcome.get()
    }

    /// The host's moment between edmmd's reply and the return into the enclave. The kernel EAUGs
    /// a hole on any fault in the enclave's VMA, whatever the CPU mode (sgx_vma_fault →
    /// sgx_encl_eaug_page), and installs the PTE in this process: the EACCEPT that follows finds
    /// it and takes no fault, so no AEX. A read from outside the enclave gets abort-page
    /// semantics (all ones); a page the kernel cannot EAUG now (EPC exhausted) is simply left to
    /// fault in the enclave. A host on hardware must catch that SIGBUS; here the outcome says it.
    /// Modelled by the simulator; not validated on SGX hardware.
    func prefault(_ ranges: [PageRange]) {
        for range in ranges {
            for page in range.first..<range.end { _ = enclave.untrustedAccess(address: address(page), write: false) }
        }
    }

    func accept(_ range: PageRange, flags: SecInfoFlags, leaf: String) throws(EnclaveHostError) {
        for page in range.first..<range.end {
            let outcome = eaccept(address(page), flags: flags)
            guard outcome == .success else { throw .instructionFailed(leaf: leaf, offset: page << Page.shift, outcome: outcome) }
        }
    }

    /// How many times an EACCEPT is resumed after a not-present #PF before its fault is final.
    public static let eacceptResumes = 16

    /// EACCEPT, resumed after a not-present #PF on its page: the kernel could not EAUG (or load)
    /// the page at that moment (SIGBUS: no EPC page it could take at once, or another thread won
    /// the race to add it), which reaches the runtime through the vDSO as vector 14 without the
    /// SGX bit. Like a runtime's exception handler, the host resumes the enclave (ERESUME) and the
    /// EACCEPT runs again; a fault that persists is returned.
    func eaccept(_ address: UInt64, flags: SecInfoFlags) -> InstructionOutcome {
        var outcome = cpu.eaccept(address, flags: flags)
        var resumes = 0
        while resumes < Self.eacceptResumes, case .exception(let fault) = outcome, fault.isNotPresentPageFault,
            fault.address == address
        {
            resumes += 1
            cpu.resumeAfterException()
            sched_yield()
            outcome = cpu.eaccept(address, flags: flags)
        }
        if resumes > 0 { eacceptsResumed.add(UInt64(resumes), ordering: .relaxed) }
        return outcome
    }

    /// `retried`: sent again after a reconnection; then invalid-page-state means the first one
    /// was applied (edmmd no longer has the pages as trimmed), so the pages are gone.
    func finishTrimAccepted(_ range: PageRange, _ reply: Result<Reply?, EDMMClientError>, retried: Bool = false) {
        state.withLock { s in
            switch reply {
            case .success(let r):
                if case .done(let done)? = r?.body { s.stats.noteDone(done) }
                s.tracker.removed(range)
            case .failure(let error) where retried && error.wireError?.code == .invalidPageState:
                s.tracker.removed(range)
            case .failure(let error):
                s.stats.asyncErrors.append("TRIM_ACCEPTED \(range): \(error)")
            }
        }
    }
}
