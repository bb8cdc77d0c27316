import EDMMConfig
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Where the /metrics endpoint listens.
public enum MetricsListener: Sendable, Equatable, CustomStringConvertible {
    /// Bind `host:port` (port 0: any free port).
    case address(host: String, port: Int)
    /// Adopt a listening TCP socket passed in by the service manager (socket activation).
    case inherited(fd: Int32)

    /// `[metrics] listen` / `--metrics` (`HOST:PORT`, IPv6 hosts in brackets).
    public init?(_ text: String) {
        guard let parsed = HostPort(text) else { return nil }
        self = .address(host: parsed.host, port: parsed.port)
    }

    public var description: String {
        switch self {
        // A Character, not a String: Foundation's String.contains(_:) would link ICU into edmmd.
        case .address(let host, let port): host.contains(":" as Character) ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .inherited(let fd): "inherited socket fd \(fd)"
        }
    }
}

/// The endpoint could not start listening.
public struct MetricsEndpointError: Error, CustomStringConvertible {
    public var listener: MetricsListener
    public var reason: String

    public var description: String {
        "cannot serve /metrics on \(listener): \(reason) (change [metrics] listen or --metrics; --metrics \"\" disables the endpoint)"
    }
}

/// The Prometheus endpoint: SwiftNIO's HTTP/1 server pipeline in front of a render function.
/// Keep-alive, request headers bounded to 8 KiB, bodies to 4 KiB, at most `maxConnections`
/// connections, each closed after `idleTimeout` without a request; responses compressed when the
/// request's Accept-Encoding allows (swift-nio-extras' HTTPResponseCompressor).
///
/// Start it (it is listening when `start` returns, so a taken port fails start-up), then run it as
/// a ServiceLifecycle `Service`: `run()` serves until graceful shutdown or `close()`.
public final class MetricsEndpoint: Service, Sendable {
    public struct Limits: Sendable {
        public var maxConnections = 64
        public var maxHeaderBytes = 8 * 1024
        public var maxBodyBytes = 4 * 1024
        public var idleTimeout: TimeAmount = .seconds(60)
        public init() {}
    }

    public let listener: MetricsListener
    /// The bound address (its port, when port 0 was asked).
    public let localAddress: SocketAddress?
    private let channel: any Channel

    private init(listener: MetricsListener, channel: any Channel) {
        self.listener = listener
        self.channel = channel
        localAddress = channel.localAddress
    }

    public static func start(
        _ listener: MetricsListener, limits: Limits = Limits(), logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, render: @escaping @Sendable () -> [UInt8]
    ) async throws(MetricsEndpointError) -> MetricsEndpoint {
        let open = Atomic<Int>(0)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard open.add(1, ordering: .relaxed).newValue <= limits.maxConnections else {
                        open.subtract(1, ordering: .relaxed)
                        channel.close(promise: nil)
                        return
                    }
                    channel.closeFuture.whenComplete { _ in open.subtract(1, ordering: .relaxed) }
                    var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                    decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
                    decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
                    decoderLimits.maxHeaderFieldCount = 100
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(readTimeout: limits.idleTimeout))
                    try pipeline.configureHTTPServerPipeline(
                        withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
                    // gzip or deflate when the scraper's Accept-Encoding asks (Prometheus does).
                    try pipeline.addHandler(HTTPResponseCompressor())
                    try pipeline.addHandler(MetricsHTTPHandler(maxBodyBytes: limits.maxBodyBytes, render: render))
                }
            }
        let channel: any Channel
        do {
            switch listener {
            case .address(let host, let port): channel = try await bootstrap.bind(host: host, port: port).get()
            case .inherited(let fd): channel = try await bootstrap.withBoundSocket(fd).get()
            }
        } catch {
            throw MetricsEndpointError(listener: listener, reason: "\(error)")
        }
        let endpoint = MetricsEndpoint(listener: listener, channel: channel)
        logger.info("serving /metrics", metadata: ["address": "\(endpoint.boundDescription)"])
        return endpoint
    }

    /// "127.0.0.1:9464" (the port actually bound), or the listener when the address is unknown.
    public var boundDescription: String {
        guard let ip = localAddress?.ipAddress, let port = localAddress?.port else { return "\(listener)" }
        return "\(MetricsListener.address(host: ip, port: port))"
    }

    /// Serves until graceful shutdown, cancellation or `close()`. Cancellation matters: a service
    /// group cancels its other services when one fails (edmmd's control socket cannot be bound),
    /// and waiting for the close future alone would keep the process up forever.
    public func run() async throws {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await channel.closeFuture.get()
            } onGracefulShutdown: {
                self.close()
            }
        } onCancel: {
            self.close()
        }
    }

    /// Whether the endpoint still listens.
    public var isListening: Bool { channel.isActive }

    /// Stops listening; open connections finish their current response.
    public func close() {
        channel.close(promise: nil)
    }
}
