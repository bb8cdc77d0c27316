import EDMMMetrics
import Glibc
import Logging
import NIOCore
import Testing

/// The /metrics endpoint: SwiftNIO's HTTP/1 codec in front of the exposition.
@Suite struct EndpointTests {
    private static let body = "# HELP x_total A test.\n# TYPE x_total counter\nx_total 1\n"
    private let logger = Logger(label: "metrics-endpoint-test")

    private func start(_ limits: MetricsEndpoint.Limits = .init()) async throws -> (MetricsEndpoint, Int) {
        let endpoint = try await MetricsEndpoint.start(.address(host: "127.0.0.1", port: 0), limits: limits, logger: logger) {
            Array(Self.body.utf8)
        }
        return (endpoint, try #require(endpoint.localAddress?.port))
    }

    @Test func getMetricsAnswersTheExpositionWithPrometheusContentTypeAndKeepsTheConnection() async throws {
        let (endpoint, port) = try await start()
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        for _ in 0..<3 {
            probe.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = try #require(probe.response())
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(response.body == Self.body)
        }
        probe.send("GET /metrics?name[]=x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        #expect(try #require(probe.response()).status == 200)
        #expect(probe.closedByServer())
    }

    @Test func aScraperThatAcceptsGzipGetsTheExpositionGzippedAndOthersGetItPlain() async throws {
        let (endpoint, port) = try await start()
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        probe.send("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        let compressed = try #require(probe.response())
        #expect(compressed.status == 200)
        #expect(compressed.headers["content-encoding"] == "gzip")
        #expect(compressed.bytes.starts(with: [0x1F, 0x8B]), "gzip's magic number")
        let path = "/tmp/edmm-endpoint-\(getpid()).gz"
        defer {
            unlink(path)
            unlink(path + ".txt")
        }
        let file = fopen(path, "w")
        fwrite(compressed.bytes, 1, compressed.bytes.count, file)
        fclose(file)
        #expect(system("gzip -dc \(path) > \(path).txt") == 0)
        var text = [UInt8](repeating: 0, count: 4096)
        let fd = open(path + ".txt", O_RDONLY)
        let n = read(fd, &text, text.count)
        close(fd)
        #expect(n > 0 && String(decoding: text[..<n], as: UTF8.self) == Self.body)
        probe.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let plain = try #require(probe.response())
        #expect(plain.headers["content-encoding"] == nil)
        #expect(plain.body == Self.body)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let (endpoint, port) = try await start()
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        probe.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(probe.response()?.status == 404)
        #expect(probe.response()?.status == 200)
    }

    @Test func headAnswersHeadersWithoutABody() async throws {
        let (endpoint, port) = try await start()
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        probe.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let response = try #require(probe.response(head: true))
        #expect(response.status == 200)
        #expect(response.headers["content-length"] == "\(Self.body.utf8.count)")
        probe.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(probe.response()?.body == Self.body, "no stray body bytes before the next response")
    }

    @Test func otherPathsAre404AndOtherMethods405WithAllow() async throws {
        let (endpoint, port) = try await start()
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        for path in ["/", "/metrics/", "/metricsx", "/debug"] {
            probe.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(probe.response()?.status == 404, "\(path)")
        }
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            probe.send("\(method) /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            let response = try #require(probe.response())
            #expect(response.status == 405, "\(method)")
            #expect(response.headers["allow"] == "GET, HEAD")
        }
    }

    @Test func aBodyOverTheLimitIsRefusedWith413AndTheConnectionCloses() async throws {
        var limits = MetricsEndpoint.Limits()
        limits.maxBodyBytes = 100
        let (endpoint, port) = try await start(limits)
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        probe.send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + String(repeating: "a", count: 1000))
        #expect(probe.response()?.status == 413)
        #expect(probe.closedByServer())
    }

    @Test func headersOverTheLimitAreRefusedAndTheConnectionCloses() async throws {
        var limits = MetricsEndpoint.Limits()
        limits.maxHeaderBytes = 1024
        let (endpoint, port) = try await start(limits)
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        probe.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 4096))\r\n\r\n")
        let status = probe.response()?.status
        #expect(status == 400 || status == 431 || status == nil)
        #expect(probe.closedByServer())
    }

    @Test func malformedRequestsGet400AndTheConnectionCloses() async throws {
        let (endpoint, port) = try await start()
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        probe.send("\u{1}\u{2} not http at all\r\n\r\n")
        #expect(probe.response()?.status == 400)
        #expect(probe.closedByServer())
    }

    @Test func anIdleConnectionIsClosed() async throws {
        var limits = MetricsEndpoint.Limits()
        limits.idleTimeout = .milliseconds(200)
        let (endpoint, port) = try await start(limits)
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        probe.send("GET /metr")
        #expect(probe.closedByServer())
    }

    @Test func connectionsBeyondTheLimitAreClosedAtOnce() async throws {
        var limits = MetricsEndpoint.Limits()
        limits.maxConnections = 2
        let (endpoint, port) = try await start(limits)
        defer { endpoint.close() }
        let first = try HTTPProbe(port: port)
        let second = try HTTPProbe(port: port)
        for probe in [first, second] {
            probe.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(probe.response()?.status == 200)
        }
        let third = try HTTPProbe(port: port)
        third.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(third.response() == nil)
        #expect(third.closedByServer())
    }

    @Test func anInheritedListeningSocketIsServed() async throws {
        let (fd, port) = try listeningSocket()
        let endpoint = try await MetricsEndpoint.start(.inherited(fd: fd), logger: logger) { Array(Self.body.utf8) }
        defer { endpoint.close() }
        let probe = try HTTPProbe(port: port)
        probe.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(probe.response()?.body == Self.body)
    }

    @Test func aTakenPortFailsStartWithTheAddressAndWhatToDo() async throws {
        let (fd, port) = try listeningSocket()
        defer { close(fd) }
        do {
            let endpoint = try await MetricsEndpoint.start(.address(host: "127.0.0.1", port: port), logger: logger) { [] }
            endpoint.close()
            Issue.record("bound a port another socket listens on")
        } catch {
            #expect(error.description.contains("127.0.0.1:\(port)"))
            #expect(error.description.contains("--metrics"))
        }
    }

    @Test func runReturnsWhenTheEndpointIsClosed() async throws {
        let (endpoint, _) = try await start()
        #expect(endpoint.isListening)
        async let served: Void = endpoint.run()
        endpoint.close()
        try await served
        #expect(!endpoint.isListening)
    }

    @Test func listenAddressesParseAsTheConfigurationWritesThem() {
        #expect(MetricsListener("127.0.0.1:9464") == .address(host: "127.0.0.1", port: 9464))
        #expect(MetricsListener("[::1]:9464") == .address(host: "::1", port: 9464))
        #expect(MetricsListener("[::1]:9464")?.description == "[::1]:9464")
        #expect(MetricsListener("localhost") == nil)
        #expect(MetricsListener("127.0.0.1:99999") == nil)
    }
}
