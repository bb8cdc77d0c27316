import EDMMDaemon
import EDMMProtocol
import Prometheus

/// The daemon's histograms on the exporter's registry, with their buckets.
enum PrometheusInstruments {
    /// From a pool ALLOCATE (microseconds) to a trim that waited for its batch window and ioctl.
    static let latencyBuckets: [Duration] = [
        .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250),
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]
    static let requestBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    static let pageBuckets: [Double] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536]

    static func make(_ registry: PrometheusCollectorRegistry) -> DaemonInstruments {
        DaemonInstruments(
            requestDuration: { verb in
                registry.makeDurationHistogram(
                    descriptor: MetricCatalog.requestDuration.descriptor, labels: [("verb", verb.metricName)],
                    buckets: latencyBuckets)
            },
            flushRequests: registry.makeValueHistogram(descriptor: MetricCatalog.flushRequests.descriptor, buckets: requestBuckets),
            ioctlPages: { kind in
                registry.makeValueHistogram(
                    descriptor: MetricCatalog.ioctlPages.descriptor, labels: [("ioctl", kind.name)], buckets: pageBuckets)
            })
    }
}
