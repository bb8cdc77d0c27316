import EDMMCore
import EDMMDaemon
import EDMMProtocol
import Prometheus

/// The machine-wide series, set from the daemon's snapshot on every scrape.
final class DaemonSeries {
    private let registry: PrometheusCollectorRegistry
    private let epcTotal, epcUsed, epcFree, epcCommitted, underPressure, enclaves, connections: Gauge
    private var device: (mode: WireDeviceKind, gauge: Gauge)?
    /// Daemon counters by their STATUS name (`requests_trim_ok`, `ioctls`, ...).
    private let counters: [String: Counter]

    init(registry: PrometheusCollectorRegistry, version: String) {
        self.registry = registry
        registry.gauge(MetricCatalog.buildInfo, [("version", version)]).set(to: 1)
        epcTotal = registry.gauge(MetricCatalog.epcTotal)
        epcUsed = registry.gauge(MetricCatalog.epcUsed)
        epcFree = registry.gauge(MetricCatalog.epcFree)
        epcCommitted = registry.gauge(MetricCatalog.epcCommitted)
        underPressure = registry.gauge(MetricCatalog.underPressure)
        enclaves = registry.gauge(MetricCatalog.enclaves)
        connections = registry.gauge(MetricCatalog.connections)
        var counters: [String: Counter] = [:]
        for verb in Verb.allCases {
            for result in ["ok", "failed"] {
                counters["requests_\(verb.metricName)_\(result)"] = registry.counter(
                    MetricCatalog.requests, [("verb", verb.metricName), ("result", result)])
            }
        }
        counters["requests_unknown_verb"] = registry.counter(MetricCatalog.requests, [("verb", "unknown"), ("result", "failed")])
        counters["ioctls"] = registry.counter(MetricCatalog.ioctls)
        for event in ["accepted", "refused", "dropped"] {
            counters["connections_\(event)"] = registry.counter(MetricCatalog.connectionEvents, [("event", event)])
        }
        for event in ["registered", "unregistered"] {
            counters["enclaves_\(event)"] = registry.counter(MetricCatalog.registrations, [("event", event)])
        }
        counters["messages_malformed"] = registry.counter(MetricCatalog.malformedMessages)
        counters["reclaim_notices"] = registry.counter(MetricCatalog.reclaimNotices)
        counters["reclaimed_pages"] = registry.counter(MetricCatalog.reclaimedPages)
        self.counters = counters
    }

    func update(_ snapshot: DaemonSnapshot) {
        if device?.mode != snapshot.mode {
            if let old = device { registry.unregisterGauge(old.gauge) }
            let gauge = registry.gauge(MetricCatalog.device, [("device", "\(snapshot.mode)")])
            gauge.set(to: 1)
            device = (snapshot.mode, gauge)
        }
        // Page counts may come from the simulated EPC's shared memory (clamped where read) or a
        // kernel enclave's adopted pages: the products saturate rather than trap.
        let total = Page.bytes(snapshot.epcTotalPages)
        let used = Page.bytes(snapshot.residentPages ?? snapshot.committedPages)
        epcTotal.set(to: Double(total))
        epcUsed.set(to: Double(used))
        epcFree.set(to: Double(total > used ? total - used : 0))
        epcCommitted.set(to: Double(Page.bytes(snapshot.committedPages)))
        underPressure.set(to: snapshot.underPressure ? 1 : 0)
        enclaves.set(to: Double(snapshot.enclaves.count))
        connections.set(to: Double(snapshot.connections))
        for counter in snapshot.counters {
            counters[counter.name]?.mirror(counter.value)
        }
    }
}
