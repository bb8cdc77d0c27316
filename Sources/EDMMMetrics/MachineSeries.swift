import EDMMCore
import EDMMDaemon
import EDMMProtocol

/// The machine-wide families of one scrape, from the daemon's snapshot.
enum MachineSeries {
    static func write(_ snapshot: DaemonSnapshot, fdStoreMax: UInt64?, into writer: inout ExpositionWriter) {
        let counters = Dictionary(snapshot.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        func counter(_ name: String) -> UInt64 { counters[name] ?? 0 }

        writer.family(MetricCatalog.device)
        writer.sample(MetricCatalog.device, LabelSet([("device", "\(snapshot.mode)")]), UInt64(1))
        // Page counts may come from the simulated EPC's shared memory (clamped where read) or a
        // kernel enclave's adopted pages: the products saturate rather than trap.
        let total = Page.bytes(snapshot.epcTotalPages)
        let used = Page.bytes(snapshot.epc.usedPages)
        writer.single(MetricCatalog.epcTotal, total)
        writer.single(MetricCatalog.epcUsed, used)
        writer.single(MetricCatalog.epcFree, total > used ? total - used : 0)
        writer.single(MetricCatalog.epcCommitted, Page.bytes(snapshot.committedPages))
        writer.single(MetricCatalog.epcPool, Page.bytes(snapshot.enclaves.reduce(0) { $0 &+ $1.pages.pooled }))
        writer.single(MetricCatalog.epcTrimming, Page.bytes(snapshot.enclaves.reduce(0) { $0 &+ $1.pages.trimming &+ $1.pages.removing }))
        writer.single(MetricCatalog.underPressure, snapshot.underPressure ? 1 : 0)
        writer.single(MetricCatalog.deviceReclaiming, snapshot.epc.deviceReclaiming ? 1 : 0)
        writer.family(MetricCatalog.quotaLimit)
        let quotas = [
            ("enclave", snapshot.quotas.enclavePages), ("uid", snapshot.quotas.uidPages), ("machine", snapshot.quotas.machinePages),
        ]
        for (quota, pages) in quotas {
            if let pages { writer.sample(MetricCatalog.quotaLimit, LabelSet([("quota", quota)]), Page.bytes(pages)) }
        }
        writer.single(MetricCatalog.enclaves, UInt64(snapshot.enclaves.count))
        writer.single(MetricCatalog.connections, UInt64(snapshot.connections))

        // Every verb's successes; failures only for the (verb, reason) pairs that happened.
        writer.family(MetricCatalog.requests)
        var failures: [String: [RequestFailureCount]] = [:]
        for failure in snapshot.requestFailures { failures[failure.verb?.metricName ?? "unknown", default: []].append(failure) }
        for verb in Verb.allCases.map(\.metricName) + ["unknown"] {
            if verb != "unknown" {
                writer.sample(MetricCatalog.requests, LabelSet([("verb", verb), ("result", "ok")]), counter("requests_\(verb)_ok"))
            }
            for failure in failures[verb] ?? [] {
                writer.sample(MetricCatalog.requests, LabelSet([("verb", verb), ("result", "\(failure.reason)")]), failure.count)
            }
        }
        writer.family(MetricCatalog.ioctls)
        for kind in WireIoctl.allKinds {
            writer.sample(MetricCatalog.ioctls, LabelSet([("ioctl", kind.name)]), counter("ioctl_\(kind.name)_calls"))
        }
        writer.single(MetricCatalog.ioctlErrors, counter("ioctl_errors"))
        writer.family(MetricCatalog.ioctlRetries)
        for errno in ["EBUSY", "EAGAIN", "EINTR"] {
            writer.sample(MetricCatalog.ioctlRetries, LabelSet([("errno", errno)]), counter("retries_\(errno.lowercased())"))
        }
        writer.family(MetricCatalog.connectionEvents)
        for event in ["accepted", "refused", "dropped"] {
            writer.sample(MetricCatalog.connectionEvents, LabelSet([("event", event)]), counter("connections_\(event)"))
        }
        writer.family(MetricCatalog.registrations)
        for event in ["registered", "unregistered"] {
            writer.sample(MetricCatalog.registrations, LabelSet([("event", event)]), counter("enclaves_\(event)"))
        }
        writer.single(MetricCatalog.uncheckedRegistrations, counter("registrations_unchecked"))
        writer.family(MetricCatalog.fastPath)
        for path in ["inline", "handed_off"] {
            writer.sample(MetricCatalog.fastPath, LabelSet([("path", path)]), counter("fast_path_\(path)"))
        }
        writer.single(MetricCatalog.malformedMessages, counter("messages_malformed"))
        writer.single(MetricCatalog.reclaimNotices, counter("reclaim_notices"))
        writer.single(MetricCatalog.reclaimed, Page.bytes(counter("reclaimed_pages")))

        writer.single(MetricCatalog.reloadSuccessful, snapshot.lastReload.successful ? 1 : 0)
        writer.family(MetricCatalog.reloadTime)
        writer.sample(MetricCatalog.reloadTime, real: snapshot.lastReload.lastSuccessSeconds)
        writer.family(MetricCatalog.fdStoreDescriptors)
        if let store = snapshot.fdStore { writer.sample(MetricCatalog.fdStoreDescriptors, .empty, UInt64(store.descriptors)) }
        writer.family(MetricCatalog.fdStoreMax)
        if snapshot.fdStore != nil, let fdStoreMax { writer.sample(MetricCatalog.fdStoreMax, .empty, fdStoreMax) }
        writer.family(MetricCatalog.fdStoreLastWrite)
        if let written = snapshot.fdStore?.lastWriteSeconds { writer.sample(MetricCatalog.fdStoreLastWrite, real: written) }
        writer.family(MetricCatalog.fdStoreWriteFailures)
        if let store = snapshot.fdStore { writer.sample(MetricCatalog.fdStoreWriteFailures, .empty, store.writeFailures) }
    }
}
