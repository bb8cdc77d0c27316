import EDMMDaemon
import EDMMProtocol
import Prometheus

/// The series of one registered enclave, labelled by its label, id and uid. Created when a scrape
/// first sees the enclave, set from its snapshot on every scrape, unregistered when it is gone.
final class EnclaveSeries {
    /// The verbs an enclave's queue answers and counts.
    static let verbs: [Verb] = [
        .register, .attach, .unregister, .allocate, .free, .trim, .trimAccepted, .restrict, .relax, .makeTCS, .sync, .stats,
    ]

    private let registry: PrometheusCollectorRegistry
    private let labels: [(String, String)]
    private let committed, pool, trimming, removing, tcs, epc, size, connections: Gauge
    private var quota: Gauge?
    private let requests: [(verb: Verb, ok: Counter, failed: Counter)]
    private let ioctls, ioctlPages: [(kind: WireIoctl, counter: Counter)]
    private let retriesEBUSY, retriesEAGAIN, retriesEINTR, ioctlErrors, reclaimed, flushes: Counter

    init(_ enclave: EnclaveSnapshot, registry: PrometheusCollectorRegistry) {
        self.registry = registry
        let labels = [("enclave", enclave.label), ("enclave_id", "\(enclave.handle)"), ("uid", "\(enclave.owner.uid)")]
        self.labels = labels
        func gauge(_ spec: MetricSpec) -> Gauge { registry.gauge(spec, labels) }
        func counter(_ spec: MetricSpec, _ extra: (String, String)...) -> Counter { registry.counter(spec, labels + extra) }
        committed = gauge(MetricCatalog.enclaveCommitted)
        pool = gauge(MetricCatalog.enclavePool)
        trimming = gauge(MetricCatalog.enclaveTrimming)
        removing = gauge(MetricCatalog.enclaveRemoving)
        tcs = gauge(MetricCatalog.enclaveTCS)
        epc = gauge(MetricCatalog.enclaveEPC)
        size = gauge(MetricCatalog.enclaveSize)
        connections = gauge(MetricCatalog.enclaveConnections)
        requests = Self.verbs.map { verb in
            let name = verb.metricName
            return (
                verb, counter(MetricCatalog.enclaveRequests, ("verb", name), ("result", "ok")),
                counter(MetricCatalog.enclaveRequests, ("verb", name), ("result", "failed"))
            )
        }
        ioctls = WireIoctl.allKinds.map { ($0, counter(MetricCatalog.enclaveIoctls, ("ioctl", $0.name))) }
        ioctlPages = WireIoctl.allKinds.map { ($0, counter(MetricCatalog.enclaveIoctlPages, ("ioctl", $0.name))) }
        retriesEBUSY = counter(MetricCatalog.enclaveRetries, ("errno", "EBUSY"))
        retriesEAGAIN = counter(MetricCatalog.enclaveRetries, ("errno", "EAGAIN"))
        retriesEINTR = counter(MetricCatalog.enclaveRetries, ("errno", "EINTR"))
        ioctlErrors = counter(MetricCatalog.enclaveIoctlErrors)
        reclaimed = counter(MetricCatalog.enclaveReclaimed)
        flushes = counter(MetricCatalog.enclaveFlushes)
    }

    /// Sets every series from the enclave's published snapshot.
    func update(_ enclave: EnclaveSnapshot) {
        let summary = enclave.summary
        committed.set(to: Double(summary.committedPages))
        pool.set(to: Double(summary.pooledPages))
        trimming.set(to: Double(summary.trimmingPages))
        removing.set(to: Double(summary.removingPages))
        tcs.set(to: Double(summary.tcsPages))
        epc.set(to: Double(enclave.pages.epcPages))
        size.set(to: Double(enclave.size))
        connections.set(to: Double(enclave.connections))
        updateQuota(enclave.quotaPages)
        let counters = enclave.counters
        for (verb, ok, failed) in requests {
            ok.mirror(counters.requestsOK[Int(verb.rawValue)])
            failed.mirror(counters.requestsFailed[Int(verb.rawValue)])
        }
        for (kind, counter) in ioctls { counter.mirror(counters.ioctlCalls[kind]) }
        for (kind, counter) in ioctlPages { counter.mirror(counters.ioctlPages[kind]) }
        retriesEBUSY.mirror(counters.retriesEBUSY)
        retriesEAGAIN.mirror(counters.retriesEAGAIN)
        retriesEINTR.mirror(counters.retriesEINTR)
        ioctlErrors.mirror(counters.ioctlErrors)
        reclaimed.mirror(counters.reclaimedPages)
        flushes.mirror(counters.flushes)
    }

    /// A quota can appear or go away on RELOAD.
    private func updateQuota(_ pages: UInt64?) {
        switch (pages, quota) {
        case (let pages?, let gauge?): gauge.set(to: Double(pages))
        case (let pages?, nil):
            let gauge = registry.gauge(MetricCatalog.enclaveQuota, labels)
            gauge.set(to: Double(pages))
            quota = gauge
        case (nil, let gauge?):
            registry.unregisterGauge(gauge)
            quota = nil
        case (nil, nil): break
        }
    }

    /// Removes every series of the enclave from the registry.
    func unregister() {
        for gauge in [committed, pool, trimming, removing, tcs, epc, size, connections] + (quota.map { [$0] } ?? []) {
            registry.unregisterGauge(gauge)
        }
        let counters =
            requests.flatMap { [$0.ok, $0.failed] } + ioctls.map(\.counter) + ioctlPages.map(\.counter)
            + [retriesEBUSY, retriesEAGAIN, retriesEINTR, ioctlErrors, reclaimed, flushes]
        for counter in counters { registry.unregisterCounter(counter) }
    }
}

extension Verb {
    /// The verb in lower case (`trim_accepted`), as in label values and STATS counter names.
    var metricName: String { "\(self)".lowercased() }
}
