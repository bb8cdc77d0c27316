import Dispatch
import EDMMCore

/// The enclave's side of the FD store: what is stored, and how a stored enclave comes back.
extension EnclaveContext {
    /// The descriptor the FD store keeps for this enclave (queue-confined): the kernel enclave
    /// descriptor, or the simulated enclave's memfd.
    var storableDescriptor: Int32? { device?.storableDescriptor }

    /// The enclave's record and counters, taken on its queue (nil once it is closed).
    func persistentState(completion: @escaping @Sendable (PersistedState.Enclave?) -> Void) {
        record { record in
            // `record` calls back on the queue, which owns `counters`.
            completion(record.map { PersistedState.Enclave(record: $0, counters: self.counters) })
        }
    }

    /// An enclave of the previous daemon, rebuilt from its record around its stored descriptor.
    /// It is active at once and waits for its clients to ATTACH again; if none has after
    /// `grace`, it is unregistered (its host died during the restart).
    ///
    /// `settlePool`: the state may be older than the last replies the previous daemon sent (it
    /// did not stop cleanly), so a page it shows pooled may have been reused since. Such pages are
    /// restored as committed: edmmd will not reuse or reclaim them (at worst they stay committed
    /// until the enclave goes), rather than trim a page the enclave uses. For a simulated enclave
    /// the EPCM then has the last word on every page (`ReconciledLedger`).
    static func restore(
        _ saved: PersistedState.Enclave, device: any OpenedEnclave, core: DaemonCore, settlePool: Bool, grace: Duration
    ) throws(LedgerError) -> EnclaveContext {
        var record = saved.record
        let pooledInRecord = record.pages.compactMap { entry -> PageRange? in
            if case .pooled = entry.value { return entry.range }
            return nil
        }
        if settlePool {
            record.pages = record.pages.map { entry in
                guard case .pooled(let permissions, _) = entry.value else { return entry }
                return .init(range: entry.range, value: .committed(permissions))
            }
        }
        var ledger = try record.rebuildLedger()
        var unaccepted: [PageRange] = []
        var reclaimed: [PageRange] = []
        if settlePool, let epcm = device.epcm {
            let reconciled = try ReconciledLedger(ledger, managed: record.managed, pooledInRecord: pooledInRecord, epcm: epcm)
            (ledger, unaccepted, reclaimed) = (reconciled.ledger, reconciled.unaccepted, reconciled.reclaimed)
        }
        let enclave = EnclaveContext(
            handle: record.handle, label: record.label, owner: record.owner, base: record.base, size: record.size,
            managed: record.managed, device: device, core: core)
        // Nothing else knows the enclave yet: set it up on its queue before publishing it.
        enclave.queue.sync {
            enclave.ledger = ledger
            for range in unaccepted { enclave.freshUnaccepted.insert(range) }
            enclave.noticesOwed = reclaimed
            enclave.counters = saved.counters
            enclave.state = .active
            core.registry.insert(enclave)
            enclave.publish()
        }
        enclave.queue.asyncAfter(deadline: .now() + .microseconds(Int(grace.microsecondsClamped))) { [weak enclave] in
            guard let enclave, enclave.state == .active, enclave.sessions.isEmpty else { return }
            enclave.closeOnQueue(reason: "no client attached it again within \(grace) of the restart")
        }
        return enclave
    }
}
