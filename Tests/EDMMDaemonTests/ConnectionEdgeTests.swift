import EDMMCore
import EDMMProtocol
import Glibc
import Synchronization
import Testing

/// The edges of a connection's life and of METRICS paging (issue 10).
@Suite struct ConnectionEdgeTests {
    /// A client that sends its last requests and then shuts its sending side (shutdown(SHUT_WR))
    /// still gets every answer: the socket can still be written. Before, the end of its stream
    /// closed the connection at once and the replies of the requests before it were dropped.
    @Test func requestsSentBeforeAHalfCloseAreAnsweredThenTheConnectionCloses() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, offset: 0, length: 8 * 4096))
            enclave.acceptFresh(grant.fresh)
            let ids = try client.send([
                .status, .free(RangeRequest(enclave: handle, range: pages(0, 2))), .trim(RangeRequest(enclave: handle, range: pages(2, 2))),
                .sync(handle),
            ])
            #expect(shutdown(client.fd, Int32(SHUT_WR)) == 0)
            let replies = try client.responses(to: ids)
            #expect(replies.allSatisfy { $0.error == nil }, "\(replies.map(\.outcome))")
            #expect(client.waitForClose())
            // The connection is gone, and with it its enclave.
            let observer = try daemon.connect()
            #expect(try eventually { try observer.status().enclaves == 0 })
        }
    }

    /// Renderings of different lengths, numbered, so that a chunk of another rendering shows.
    final class Renderings: Sendable {
        private let count = Atomic<Int>(0)
        var made: Int { count.load(ordering: .relaxed) }

        func render() -> String {
            let n = count.add(1, ordering: .relaxed).newValue
            return String(repeating: "edmmd_rendering{number=\"\(n)\"} \(n)\n", count: 1000 + 100 * n)
        }
    }

    private func page(_ client: TestClient, from offset: UInt32) throws -> MetricsReply {
        guard case .metrics(let chunk) = try client.expect(.metrics(MetricsRequest(offset: offset))) else {
            throw TestClient.Failure.unexpected("not a METRICS reply")
        }
        return chunk
    }

    @Test func aRequestAtTheEndOfARenderingGetsAnEmptyFinalChunkOfTheSameRendering() async throws {
        let renderings = Renderings()
        try await withDaemon({ $0.limits.maxMessageBytes = 16_384 }, metricsText: { _ in renderings.render() }) { daemon in
            let client = try daemon.connect()
            var text = ""
            var chunk = try page(client, from: 0)
            let total = chunk.totalBytes
            for _ in 0..<100 {
                #expect(chunk.totalBytes == total)
                text += chunk.text
                if chunk.text.isEmpty || chunk.totalBytes != total { break }
                chunk = try page(client, from: chunk.offset + UInt32(chunk.text.utf8.count))
            }
            #expect(UInt32(text.utf8.count) == total)
            #expect(renderings.made == 1)
            #expect(text.allSatisfy { $0 != "2" })
            // Again at the end: still the same, empty, final chunk.
            let again = try page(client, from: total)
            #expect(again.text.isEmpty && again.totalBytes == total)
            // Offset 0 starts a new rendering.
            #expect(try page(client, from: 0).totalBytes != total)
            #expect(renderings.made == 2)
        }
    }

    @Test func anOffsetPastZeroWithoutARenderingInProgressIsOutOfRange() async throws {
        let renderings = Renderings()
        try await withDaemon(metricsText: { _ in renderings.render() }) { daemon in
            let client = try daemon.connect()
            let error = try client.expectError(.metrics(MetricsRequest(offset: 4096)))
            #expect(error.code == .outOfRange)
            #expect(error.message.contains("offset 0"))
            #expect(renderings.made == 0)
        }
    }
}
