import EDMMCore
import EDMMProtocol
import Glibc
import Testing

/// HELLO rules: first, within the timeout, once; version negotiation; the simulated EPC handed over.
@Suite struct HelloTests {
    @Test func helloReplyCarriesTheMachineDescriptorModeAndLimits() async throws {
        try await withDaemon({ $0.limits.maxInFlightRequests = 100 }) { daemon in
            let client = try TestClient(path: daemon.socketPath)
            let reply = try client.hello()
            #expect(reply.mode == .simulated)
            #expect(reply.version == ProtocolVersion.current)
            #expect(reply.daemonPID == UInt32(getpid()))
            #expect(reply.limits.maxInFlightRequests == 100)
            #expect(reply.carriesMachineDescriptor)
            #expect(client.receivedDescriptors.count == 1)
            let machine = try daemon.machine(from: client)
            #expect(machine.epcPages == (16 << 20) / 4096)
        }
    }

    @Test func requestsBeforeHelloAreAnsweredHelloRequiredAndTheConnectionRecovers() async throws {
        try await withDaemon { daemon in
            let client = try TestClient(path: daemon.socketPath)
            let ids = try client.send([.status, .hello(HelloRequest(clientName: "late"))])
            let replies = try client.responses(to: ids)
            #expect(replies.map { $0.error?.code } == [.helloRequired, .helloRequired])
            try client.hello()
            #expect(try client.status().mode == .simulated)
        }
    }

    @Test func helloFirstThenOtherOperationsInTheSameMessageAreServed() async throws {
        try await withDaemon { daemon in
            let client = try TestClient(path: daemon.socketPath)
            let ids = try client.send([.hello(HelloRequest(clientName: "eager")), .status])
            let replies = try client.responses(to: ids)
            #expect(replies[0].error == nil)
            #expect(replies[1].error == nil)
        }
    }

    @Test func aSecondHelloIsRefusedAsInvalidArgument() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let error = try client.expectError(.hello(HelloRequest(clientName: "again")))
            #expect(error.code == .invalidArgument)
        }
    }

    @Test func helloWithoutACommonVersionFailsWithUnsupportedVersion() async throws {
        try await withDaemon { daemon in
            let client = try TestClient(path: daemon.socketPath)
            let error = try client.expectError(.hello(HelloRequest(minVersion: 2, maxVersion: 7, clientName: "future")))
            #expect(error.code == .unsupportedVersion)
            try client.hello()
        }
    }

    @Test func aConnectionThatSendsNoHelloIsClosedAfterTheTimeout() async throws {
        try await withDaemon({ $0.limits.helloTimeoutMillis = 50 }) { daemon in
            let client = try TestClient(path: daemon.socketPath)
            let message = try client.receiveMessage()
            guard case .responses(let replies) = message else {
                Issue.record("expected an error reply, got \(String(describing: message))")
                return
            }
            #expect(replies.first?.error?.code == .helloRequired)
            #expect(replies.first?.id == 0)
            #expect(client.waitForClose())
        }
    }

    @Test func aMessageWithBadFramingIsAnsweredWithIDZeroAndTheConnectionStaysOpen() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            var garbage = MessageCodec.encodeRequests([RequestOperation(id: 7, .status)])
            garbage[0] ^= 0xFF
            try client.sendRaw(garbage)
            guard case .responses(let replies) = try client.receiveMessage() else {
                Issue.record("expected a response message")
                return
            }
            #expect(replies.count == 1)
            #expect(replies[0].id == 0)
            #expect(replies[0].verbCode == 0)
            #expect(replies[0].error?.code == .malformedMessage)
            #expect(try client.status().mode == .simulated)
        }
    }

    @Test func aPeerThatKeepsSendingGarbageIsDisconnected() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let other = try daemon.connect()
            for _ in 0..<40 { try? client.sendRaw([1, 2, 3, 4]) }
            #expect(client.waitForClose())
            #expect(try other.status().connections == 1)
        }
    }
}
