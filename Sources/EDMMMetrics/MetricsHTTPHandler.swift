import NIOCore
import NIOHTTP1

/// Answers one HTTP/1 connection (behind NIO's server pipeline, which parses, orders pipelined
/// requests and answers malformed ones with 400): `GET`/`HEAD /metrics` get the exposition;
/// other methods on /metrics get 405, other paths 404; a request body over `maxBodyBytes` gets
/// 413 and the connection closes, and so does a connection idle past the idle timeout.
///
/// Concurrency: a channel handler, confined to its channel's event loop like every NIO handler.
final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let render: @Sendable () -> [UInt8]
    private let maxBodyBytes: Int
    private var request: HTTPRequestHead?
    private var bodyBytes = 0
    /// The request was answered early (413) and the connection is closing: ignore the rest.
    private var closing = false

    init(maxBodyBytes: Int, render: @escaping @Sendable () -> [UInt8]) {
        self.maxBodyBytes = maxBodyBytes
        self.render = render
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
            bodyBytes = 0
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            if bodyBytes > maxBodyBytes, let head = request {
                closing = true
                respond(context, head, .payloadTooLarge, Array("request body over \(maxBodyBytes) bytes\n".utf8), close: true)
            }
        case .end:
            guard let head = request else { return }
            request = nil
            answer(context, head)
        }
    }

    /// A malformed request (already answered 400 by NIO's error handler) or an I/O error: the
    /// connection cannot be trusted any more.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func answer(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else {
            return respond(context, head, .notFound, Array("edmmd serves only GET /metrics\n".utf8))
        }
        guard head.method == .GET || head.method == .HEAD else {
            return respond(context, head, .methodNotAllowed, Array("only GET and HEAD\n".utf8), extra: [("Allow", "GET, HEAD")])
        }
        respond(context, head, .ok, render(), contentType: Self.contentType)
    }

    private func respond(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, _ body: [UInt8],
        contentType: String = "text/plain; charset=utf-8", extra: [(String, String)] = [], close: Bool = false
    ) {
        let keepAlive = head.isKeepAlive && !close
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.count)")] + extra)
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        if !keepAlive {
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
