import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import SGXDevice
import SGXSimulator

/// The enclave's side of one exit: what it does before the requests leave (EMODPE, TCS
/// contents), the requests themselves, and the one message that carries them.
extension SimulatedEnclaveHost {
    // MARK: Before the exit

    func prepare(
        _ operation: HostOperation
    ) -> Result<(PreparedRequest, [(range: PageRange, state: HostPage?)]), EnclaveHostError> {
        let fireAndForget = blueprint.fireAndForget
        switch operation {
        case .allocate(let pages, let growth):
            guard pages > 0, pages <= UInt64.max >> Page.shift else {
                return .failure(.notHeld(operation: "allocate", offset: 0, state: "\(pages) pages asked"))
            }
            let make = { (h: EnclaveHandle) in
                OutgoingRequest(.allocate(AllocateRequest(enclave: h, length: pages << Page.shift, permissions: .rw, allowGrowth: growth)))
            }
            return .success((PreparedRequest(make: make, repeatable: false), []))
        case .allocateAt(let range):
            let make = { (h: EnclaveHandle) in
                OutgoingRequest(
                    .allocate(AllocateRequest(enclave: h, offset: range.byteOffset, length: range.byteLength, permissions: .rw)))
            }
            return .success((PreparedRequest(make: make, repeatable: false), []))
        case .free(let range):
            return track("free", range, { t throws(CommitTracker.NotHeld) in try t.free(range) }, repeatable: false) { h in
                OutgoingRequest(.free(RangeRequest(enclave: h, range: WireRange(range))), fireAndForget: fireAndForget)
            }
        case .trim(let range):
            return track("trim", range, { t throws(CommitTracker.NotHeld) in try t.trim(range) }, repeatable: false) { h in
                OutgoingRequest(.trim(RangeRequest(enclave: h, range: WireRange(range))))
            }
        case .restrict(let range, let permissions):
            // EMODPR to the same permissions again succeeds and leaves the page as one EMODPR would.
            return track("restrict", range, { t throws(CommitTracker.NotHeld) in try t.restrict(range, to: permissions) }, repeatable: true)
            { h in
                OutgoingRequest(.restrict(PermissionsRequest(enclave: h, range: WireRange(range), permissions: permissions)))
            }
        case .relax(let range, let permissions):
            let result = track("relax", range, { t throws(CommitTracker.NotHeld) in try t.relax(range, to: permissions) }, repeatable: true)
            { h in
                OutgoingRequest(
                    .relax(PermissionsRequest(enclave: h, range: WireRange(range), permissions: permissions)), fireAndForget: fireAndForget)
            }
            guard case .success(let (_, saved)) = result else { return result }
            // The enclave extends its own permissions before telling anyone.
            for page in range.first..<range.end {
                let outcome = cpu.emodpe(address(page), flags: SecInfoFlags(permissions: permissions))
                if outcome != .success {
                    state.withLock { $0.tracker.restore(saved) }
                    return .failure(.instructionFailed(leaf: "EMODPE", offset: page << Page.shift, outcome: outcome))
                }
            }
            return result
        case .makeTCS(let page):
            let range = PageRange(first: page, count: 1)
            // The TCS is written while the page is still private PT_REG memory.
            let saved = state.withLock { $0.tracker.runs(in: range) }
            guard case .inUse(let p)? = saved.first?.state, p.isSuperset(of: .rw) else {
                return .failure(
                    .notHeld(operation: "make a TCS of", offset: range.byteOffset, state: saved.first?.state?.description ?? "hole"))
            }
            if let failure = writeTCS(at: page) { return .failure(failure) }
            return track("make a TCS of", range, { t throws(CommitTracker.NotHeld) in try t.makeTCS(range) }, repeatable: false) { h in
                OutgoingRequest(.makeTCS(RangeRequest(enclave: h, range: WireRange(range))))
            }
        }
    }

    /// Applies a tracker transition, remembering the runs it changed so a refusal can undo it.
    func track(
        _ operation: String, _ range: PageRange, _ transition: (inout CommitTracker) throws(CommitTracker.NotHeld) -> Void,
        repeatable: Bool, _ make: @escaping (EnclaveHandle) -> OutgoingRequest
    ) -> Result<(PreparedRequest, [(range: PageRange, state: HostPage?)]), EnclaveHostError> {
        let outcome: Result<[(range: PageRange, state: HostPage?)], CommitTracker.NotHeld> = state.withLock { s in
            let saved = s.tracker.runs(in: range)
            do throws(CommitTracker.NotHeld) {
                try transition(&s.tracker)
                return .success(saved)
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .success(let saved): return .success((PreparedRequest(make: make, repeatable: repeatable), saved))
        case .failure(let e): return .failure(.notHeld(operation: operation, offset: e.offset, state: e.state))
        }
    }

    /// A valid, inactive TCS with one SSA frame (what a runtime's thread setup writes).
    func writeTCS(at page: UInt64) -> EnclaveHostError? {
        let base = address(page)
        var words = [UInt64](repeating: 0, count: 512)
        words[3] = 1 << 32  // CSSA 0, NSSA 1
        words[8] = .max  // FSLIMIT, GSLIMIT
        for (index, word) in words.enumerated() {
            if case .failure(let e) = cpu.write(base + UInt64(index * 8), word) {
                return .instructionFailed(leaf: "write", offset: page << Page.shift, outcome: .exception(e))
            }
        }
        return nil
    }

    // MARK: The exit

    /// Sends requests on the current connection: one OCALL per message, as the enclave hands them
    /// to its host.
    func send(_ requests: [OutgoingRequest]) async throws(EnclaveHostError) -> Submission {
        try await send(requests, on: connection)
    }

    func send(_ requests: [OutgoingRequest], on connection: EDMMConnection) async throws(EnclaveHostError) -> Submission {
        let submission: Submission
        do {
            submission = try await connection.submit(requests)
        } catch {
            throw .client(error)
        }
        for _ in 0..<submission.messages { cpu.ocall {} }
        state.withLock { s in
            s.stats.messages += UInt64(submission.messages)
            for request in requests { s.stats.countSent(request.request.verb) }
        }
        return submission
    }

    func trimAcceptedRequest(_ range: PageRange, handle: EnclaveHandle) -> OutgoingRequest {
        OutgoingRequest(.trimAccepted(RangeRequest(enclave: handle, range: WireRange(range))))
    }
}
