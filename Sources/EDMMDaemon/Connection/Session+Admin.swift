import EDMMProtocol

/// The admin verbs: RECLAIM and RELOAD, for root and the admin group.
extension SessionState {
    /// Schedules the reclaim; its enclaves' queues answer once they have queued their trims.
    func reclaim(_ request: ReclaimRequest, id: UInt64) throws(WireError) {
        let verb = Verb.reclaim.rawValue
        guard peer.isAdmin(adminGroup: core.settings.adminGroupID) else {
            throw WireError(.notAdmin, "RECLAIM needs root or the admin group")
        }
        var target: EnclaveContext?
        if request.enclave != 0 {
            guard let enclave = core.registry.lookup(request.enclave) else {
                throw WireError(.unknownEnclave, "no registered enclave has handle \(request.enclave)")
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

    func reload() throws(WireError) -> ResponseBody {
        guard peer.isAdmin(adminGroup: core.settings.adminGroupID) else {
            throw WireError(.notAdmin, "RELOAD needs root or the admin group")
        }
        return .reload(ReloadReply(summary: try core.reload()))
    }
}
