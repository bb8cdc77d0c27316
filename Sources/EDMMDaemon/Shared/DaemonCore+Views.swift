import Dispatch
import EDMMCore
import EDMMProtocol
import Glibc
import Synchronization

/// STATUS, ENCLAVES and RECLAIM, built from the enclaves' published snapshots.
extension DaemonCore {
    /// The EPC's use as the device tells it: the simulated EPC counts every page; the kernel tells
    /// nothing, so edmmd's ledgers and one SECS page per registered enclave are a lower bound.
    func epcOccupancy() -> EPCOccupancy {
        let counted = backend.epcUsedPages
        return EPCOccupancy(
            totalPages: backend.epcTotalPages, usedPages: counted ?? quotas.machinePages &+ UInt64(registry.count),
            measure: counted == nil ? .ledgers : .device, deviceReclaiming: deviceReclaiming.load(ordering: .relaxed))
    }

    /// STATUS for `viewer`: a peer in a pod counts only its pod's enclaves (the EPC figures are
    /// the machine's, for everyone).
    func statusReply(viewer: PeerCredentials? = nil) -> StatusReply {
        // Enclaves whose committed figure (and so epcCommittedBytes) is a lower bound.
        let lowerBounds = registry.all.count { $0.identity.committedIsLowerBound }
        let counters =
            self.counters.named + backend.statusCounters
            + [
                WireCounter("epc_device_reclaiming", deviceReclaiming.load(ordering: .relaxed) ? 1 : 0),
                WireCounter("enclaves_committed_lower_bound", UInt64(lowerBounds)),
            ]
        let enclaves =
            if let viewer, viewer.scope != nil {
                registry.all.count { viewer.canView(owner: $0.owner, adminGroup: nil) }
            } else {
                registry.count
            }
        return StatusReply(
            daemonVersion: EDMMDVersion.string, mode: backend.mode, modeReason: backend.reason,
            daemonPID: UInt32(bitPattern: getpid()), uptimeMicros: MonotonicInstant.now.duration(since: startedAt).microsecondsClamped,
            enclaves: UInt32(clamping: enclaves), connections: UInt32(clamping: sessionCount),
            epcTotalBytes: Page.bytes(backend.epcTotalPages), epcCommittedBytes: Page.bytes(quotas.machinePages),
            epcResidentBytes: Page.bytes(backend.epcUsedPages ?? 0), underPressure: underPressure.load(ordering: .relaxed),
            batching: settings.flush.batching, requestsTotal: self.counters.requestsTotal, requestsPerSecond: requestsPerSecond,
            ioctlsTotal: self.counters.value(.ioctls), counters: counters)
    }

    /// One page of the enclaves `viewer` may see (its own uid's; all for root and the admin group),
    /// as many as fit in one message.
    func enclaveList(_ query: EnclaveListRequest, viewer: PeerCredentials, limits: ProtocolLimits) -> EnclaveListReply {
        let adminGroup = settings.adminGroupID
        let visible = registry.all.filter { viewer.canView(owner: $0.owner, adminGroup: adminGroup) }
        let candidates = visible.filter { $0.handle > query.startAfter }
        var budget = limits.maxMessageBytes - WireSize.messageHeader - WireSize.operationHeader - 16
        var page: [EnclaveSummary] = []
        for enclave in candidates {
            let summary = enclave.snapshot.summary
            let bytes = 115 + summary.label.utf8.count
            guard query.maxCount == 0 || page.count < Int(query.maxCount), bytes <= budget else { break }
            budget -= bytes
            page.append(summary)
        }
        let more = page.count < candidates.count
        return EnclaveListReply(
            enclaves: page, nextStartAfter: more ? (page.last?.enclave ?? query.startAfter) : 0,
            total: UInt32(clamping: visible.count))
    }

    /// Admin RECLAIM: the whole pool of `only` (or of every enclave), or up to `targetPages` taken
    /// from the least recently active enclaves first. `completion` gets the pages scheduled and
    /// how many enclaves gave some.
    func reclaim(
        only: EnclaveContext?, targetPages: UInt64, completion: @escaping @Sendable (UInt64, UInt32) -> Void
    ) {
        let enclaves = (only.map { [$0] } ?? registry.all).map { ($0, $0.snapshot) }
            .sorted { ($0.1.lastActivity, $0.0.handle) < ($1.1.lastActivity, $1.0.handle) }
        var orders: [(EnclaveContext, UInt64)] = []
        var remaining = targetPages == 0 ? UInt64.max : targetPages
        for (enclave, snapshot) in enclaves where remaining > 0 {
            let pages = targetPages == 0 ? UInt64.max : min(remaining, snapshot.pages.pooled)
            guard pages > 0 else { continue }
            orders.append((enclave, pages))
            if targetPages != 0 { remaining -= pages }
        }
        let group = DispatchGroup()
        let tally = Mutex((pages: UInt64(0), enclaves: UInt32(0)))
        for (enclave, pages) in orders {
            group.enter()
            enclave.reclaim(pages: pages, reason: .admin) { done in
                if done > 0 { tally.withLock { $0 = ($0.pages + done, $0.enclaves + 1) } }
                group.leave()
            }
        }
        group.notify(queue: queue) {
            let result = tally.withLock { $0 }
            completion(result.pages, result.enclaves)
        }
    }
}
