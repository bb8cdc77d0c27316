import EDMMDaemon
import Glibc
import Prometheus
import Synchronization

/// The Prometheus exposition of one daemon. Gauges and counters are not a second set of books:
/// every scrape writes them from `Daemon.snapshot()` (a collector, as node_exporter's are), so
/// they equal the ledgers at scrape time, and a gone enclave leaves no series behind. The
/// histograms are recorded by the daemon itself through `instruments`, on swift-prometheus'
/// registry.
///
/// `[metrics] per_enclave` and `enclave_labels` are read from the snapshot on every scrape (a
/// reload changes them). `render(for:)` filters to what a viewer may see: /metrics renders for
/// everyone, the METRICS verb for its peer.
///
/// Create the exporter first, pass `instruments` and `renderText` in `DaemonOptions`, then
/// `attach` the daemon.
public final class MetricsExporter: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// The latency and batch-size histograms, for `DaemonOptions.instruments`.
    public let instruments: DaemonInstruments
    private let buildInfo: [UInt8]
    /// systemd ≥ 254 tells a service its FileDescriptorStoreMax= in $FDSTORE.
    private let fdStoreMax = getenv("FDSTORE").flatMap { UInt64(String(cString: $0)) }
    /// The scrape lock: one scrape at a time names enclaves and writes the exposition.
    private let state = Mutex(State())

    private struct State {
        var daemon: Daemon?
        var names = EnclaveNames()
        var startTime: Double?
        /// The last exposition's size, to reserve for the next.
        var lastSize = 0
    }

    /// `revision`: the commit edmmd was built from, when the build knows it.
    public init(version: String = EDMMDVersion.string, revision: String? = nil) {
        instruments = PrometheusInstruments.make(registry)
        var writer = ExpositionWriter()
        writer.family(MetricCatalog.buildInfo)
        writer.sample(MetricCatalog.buildInfo, LabelSet([("version", version), ("revision", revision ?? "unknown")]), UInt64(1))
        buildInfo = writer.bytes
    }

    /// The daemon whose snapshot every scrape reads.
    public func attach(_ daemon: Daemon) {
        state.withLock { $0.daemon = daemon }
    }

    /// The exposition for `viewer`, from the attached daemon's snapshot (build info, process
    /// figures and histograms only before a daemon is attached).
    public func render(for viewer: MetricsViewer = .everyone) -> [UInt8] {
        state.withLock { state in
            render(&state, state.daemon?.snapshot(), viewer: viewer)
        }
    }

    public func renderText(for viewer: MetricsViewer = .everyone) -> String { String(decoding: render(for: viewer), as: UTF8.self) }

    private func render(_ state: inout State, _ snapshot: DaemonSnapshot?, viewer: MetricsViewer) -> [UInt8] {
        var writer = ExpositionWriter(capacity: state.lastSize + state.lastSize / 8)
        writer.append(buildInfo)
        if let snapshot {
            MachineSeries.write(snapshot, fdStoreMax: fdStoreMax, into: &writer)
        }
        if let figures = ProcessFigures.current(knownStartTime: state.startTime) {
            state.startTime = figures.startTimeSeconds
            figures.write(into: &writer)
        }
        if let snapshot {
            OwnerSeries.writeUIDs(snapshot, viewer: viewer, into: &writer)
            OwnerSeries.writeContainers(snapshot, viewer: viewer, into: &writer)
            if snapshot.metrics.perEnclave {
                // Named all together (a name depends on the others'), then filtered.
                let named = state.names.update(snapshot.enclaves, policy: snapshot.metrics.enclaveLabels)
                OwnerSeries.writeEnclaves(named.filter { viewer.sees($0.0.owner) }, into: &writer)
            }
        }
        var bytes = writer.bytes
        registry.emit(into: &bytes)
        state.lastSize = bytes.count
        return bytes
    }
}
