import EDMMProtocol
import Metrics

/// The histograms the daemon records on its request path, as swift-metrics handlers: request
/// latency by verb (where a reply is produced) and batch sizes (where a flush is planned). A
/// metrics backend supplies them; the default records nothing. Recording is one handler call, with
/// no allocation.
public struct DaemonInstruments: Sendable {
    /// Indexed by verb code; index 0 takes unknown verbs.
    private let requestDuration: [any TimerHandler]
    private let flushRequests: any RecorderHandler
    /// Indexed by `WireIoctl.rawValue`.
    private let ioctlPages: [any RecorderHandler]

    /// - Parameters:
    ///   - requestDuration: the histogram of the time from a request's arrival to its reply, per verb.
    ///   - flushRequests: the histogram of requests (client and reclaim) one flush serves.
    ///   - ioctlPages: the histogram of pages per planned ioctl, per kind.
    public init(
        requestDuration: (Verb) -> any TimerHandler, flushRequests: any RecorderHandler,
        ioctlPages: (WireIoctl) -> any RecorderHandler
    ) {
        let noop = NOOPMetricsHandler.instance
        self.requestDuration = [noop] + Verb.allCases.map(requestDuration)
        self.flushRequests = flushRequests
        self.ioctlPages = [noop] + WireIoctl.allKinds.map(ioctlPages)
    }

    /// Records nothing.
    public static let none = DaemonInstruments(
        requestDuration: { _ in NOOPMetricsHandler.instance }, flushRequests: NOOPMetricsHandler.instance,
        ioctlPages: { _ in NOOPMetricsHandler.instance })

    func recordReply(verbCode: UInt16, nanoseconds: UInt64) {
        let index = Int(verbCode) < requestDuration.count ? Int(verbCode) : 0
        requestDuration[index].recordNanoseconds(Int64(clamping: nanoseconds))
    }

    func recordFlush(requests: Int) {
        flushRequests.record(Int64(requests))
    }

    func recordIoctl(_ kind: WireIoctl, pages: UInt64) {
        ioctlPages[Int(kind.rawValue)].record(Int64(clamping: pages))
    }
}

extension WireIoctl {
    /// The three SGX2 ioctls, in `rawValue` order.
    public static let allKinds: [WireIoctl] = [.modifyTypes, .restrictPermissions, .removePages]

    /// The kernel's name in lower case (`modify_types`), as in counter names and metric labels.
    public var name: String { counterName }
}
