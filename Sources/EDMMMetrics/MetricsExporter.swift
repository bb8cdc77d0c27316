import EDMMCore
import EDMMDaemon
import EDMMProtocol
import Prometheus
import Synchronization

/// The Prometheus exposition of one daemon. Gauges and counters are not a second set of books:
/// every scrape sets them from `Daemon.snapshot()`, so they equal the ledgers at scrape time. The
/// histograms are recorded by the daemon itself through `instruments`.
///
/// Create the exporter first, pass `instruments` and `render` in `DaemonOptions`, then `attach`
/// the daemon. Both /metrics and the METRICS verb call `render`.
public final class MetricsExporter: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// The latency and batch-size histograms, for `DaemonOptions.instruments`.
    public let instruments: DaemonInstruments
    /// The scrape lock: one scrape at a time sets the series and emits them.
    private let state: Mutex<State>

    private struct State {
        var daemon: Daemon?
        let daemonSeries: DaemonSeries
        var enclaves: [EnclaveHandle: EnclaveSeries] = [:]
    }

    public init(version: String = EDMMDVersion.string) {
        instruments = PrometheusInstruments.make(registry)
        state = Mutex(State(daemonSeries: DaemonSeries(registry: registry, version: version)))
    }

    /// The daemon whose snapshot every scrape reads.
    public func attach(_ daemon: Daemon) {
        state.withLock { $0.daemon = daemon }
    }

    /// The exposition, from the attached daemon's snapshot (only build info and histograms before
    /// a daemon is attached).
    public func render() -> [UInt8] {
        state.withLock { state in
            if let snapshot = state.daemon?.snapshot() { Self.update(&state, snapshot, registry: registry) }
            return registry.emitToBuffer()
        }
    }

    /// The exposition of `snapshot`.
    public func render(_ snapshot: DaemonSnapshot) -> [UInt8] {
        state.withLock { state in
            Self.update(&state, snapshot, registry: registry)
            return registry.emitToBuffer()
        }
    }

    public func renderText() -> String { String(decoding: render(), as: UTF8.self) }

    private static func update(_ state: inout State, _ snapshot: DaemonSnapshot, registry: PrometheusCollectorRegistry) {
        state.daemonSeries.update(snapshot)
        var gone = Set(state.enclaves.keys)
        for enclave in snapshot.enclaves {
            gone.remove(enclave.handle)
            let series = state.enclaves[enclave.handle] ?? EnclaveSeries(enclave, registry: registry)
            state.enclaves[enclave.handle] = series
            series.update(enclave)
        }
        for handle in gone { state.enclaves.removeValue(forKey: handle)?.unregister() }
    }
}
