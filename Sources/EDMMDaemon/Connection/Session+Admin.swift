import EDMMProtocol

/// The admin verbs: RECLAIM and RELOAD, for root and the admin group.
extension SessionState {
    func reclaim(_ request: ReclaimRequest, id: UInt64) {
        let verb = Verb.reclaim.rawValue
        guard peer.isAdmin(adminGroup: core.settings.adminGroupID) else {
            return answer(id: id, verbCode: verb, .failure(WireError(.notAdmin, "RECLAIM needs root or the admin group")))
        }
        var target: EnclaveContext?
        if request.enclave != 0 {
            guard let enclave = core.registry.lookup(request.enclave) else {
                return answer(id: id, verbCode: verb, .failure(WireError(.unknownEnclave, "no registered enclave has handle \(request.enclave)")))
            }
            target = enclave
        }
        core.reclaim(only: target, targetPages: request.targetPages) { [session] pages, enclaves in
            session.onQueue { state in
                state.writingAfter {
                    state.answer(id: id, verbCode: verb, .success(.reclaim(ReclaimReply(scheduledPages: pages, enclaves: enclaves))))
                }
            }
        }
    }

    func reload(id: UInt64) {
        let verb = Verb.reload.rawValue
        guard peer.isAdmin(adminGroup: core.settings.adminGroupID) else {
            return answer(id: id, verbCode: verb, .failure(WireError(.notAdmin, "RELOAD needs root or the admin group")))
        }
        answer(id: id, verbCode: verb, core.reload().map { .reload(ReloadReply(summary: $0)) })
    }
}
