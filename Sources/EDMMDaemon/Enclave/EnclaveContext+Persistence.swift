import Dispatch
import EDMMCore

/// The enclave's side of the FD store: what is stored, and how a stored enclave comes back.
extension EnclaveContext {
    /// The enclave's record, taken on its queue (nil once it is closed).
    func record(completion: @escaping @Sendable (EnclaveRecord?) -> Void) {
        onQueue { completion($0.record()) }
    }

    /// The enclave's record and counters, taken on its queue (nil once it is closed).
    func persistentState(completion: @escaping @Sendable (PersistedState.Enclave?) -> Void) {
        onQueue { state in completion(state.record().map { PersistedState.Enclave(record: $0, counters: state.counters) }) }
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
        let enclave = EnclaveContext(identity: record.identity, device: device, core: core)
        // Nothing else knows the enclave yet: set it up on its queue before publishing it.
        enclave.state.withValue { state in
            state.ledger = ledger
            for range in unaccepted { state.freshUnaccepted.insert(range) }
            state.noticesOwed = reclaimed
            state.counters = saved.counters
            state.phase = .active
            core.registry.insert(enclave)
            state.publish()
        }
        enclave.queue.asyncAfter(deadline: .now() + .microseconds(Int(grace.microsecondsClamped))) { [weak enclave] in
            enclave?.state.withValue { state in
                guard state.phase == .active, state.sessions.isEmpty else { return }
                state.close(reason: "no client attached it again within \(grace) of the restart")
            }
        }
        return enclave
    }
}

extension EnclaveState {
    /// The descriptor the FD store keeps for this enclave: the kernel enclave descriptor, or the
    /// simulated enclave's memfd.
    var storableDescriptor: Int32? { device?.storableDescriptor }

    /// The enclave's record: its identity and every tracked page in its settled state (nil once
    /// it is closed).
    func record() -> EnclaveRecord? {
        guard phase == .active else { return nil }
        var entries: [RangeMap<PageState>.Entry] = []
        for entry in ledger.trackedRanges {
            let state = EnclaveRecord.settled(entry.value)
            if let last = entries.last, last.value == state, last.range.end == entry.range.first {
                entries[entries.count - 1].range = PageRange(first: last.range.first, end: entry.range.end)
            } else {
                entries.append(RangeMap<PageState>.Entry(range: entry.range, value: state))
            }
        }
        return EnclaveRecord(identity: identity, pages: entries)
    }
}
