import EDMMCore
import EDMMProtocol
import Glibc
import Testing

/// Every protocol limit is answered with its own error, never a crash or a silent drop.
@Suite struct LimitsTests {
    @Test func operationsBeyondTheInFlightLimitGetTooManyInFlight() async throws {
        try await withDaemon({
            $0.limits.maxInFlightRequests = 4
            $0.batch.windowMicros = 200_000
        }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, registered) = try client.register(enclave, preheatPages: 6)
            enclave.acceptFresh(registered.preheat)
            let first = registered.preheat[0].offset / 4096
            let ids = try client.send((0..<6).map { .trim(RangeRequest(enclave: handle, range: pages(first + $0, 1))) })
            let replies = try client.responses(to: ids)
            #expect(replies[0..<4].allSatisfy { $0.error == nil })
            #expect(replies[4].error?.code == .tooManyInFlight)
            #expect(replies[5].error?.detail == .limit(limit: 4, actual: 5))
        }
    }

    @Test func anIDAlreadyInFlightIsRefusedAndTheFirstRequestContinues() async throws {
        try await withDaemon({ $0.batch.windowMicros = 200_000 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, registered) = try client.register(enclave, preheatPages: 1)
            enclave.acceptFresh(registered.preheat)
            let trim = RequestOperation(id: 500, .trim(RangeRequest(enclave: handle, range: registered.preheat[0])))
            let duplicate = RequestOperation(id: 500, .status)
            try client.sendRaw(MessageCodec.encodeRequests([trim, duplicate]))
            let first = try client.response(to: 500)
            let second = try client.response(to: 500)
            let outcomes = [first, second].map { $0.verb }
            #expect(outcomes.contains(.status) && outcomes.contains(.trim))
            #expect([first, second].first { $0.verb == .status }?.error?.code == .duplicateRequestID)
            #expect([first, second].first { $0.verb == .trim }?.error == nil)
        }
    }

    @Test func anIDCanBeReusedOnceItsRequestWasAnswered() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            for _ in 0..<2 {
                try client.sendRaw(MessageCodec.encodeRequests([RequestOperation(id: 9, .status)]))
                #expect(try client.response(to: 9).error == nil)
            }
        }
    }

    @Test func registeringBeyondTheEnclaveLimitGetsTooManyEnclaves() async throws {
        try await withDaemon({ $0.limits.maxEnclavesPerConnection = 1 }) { daemon in
            let client = try daemon.connect()
            let machine = try daemon.machine(from: client)
            let first = try TestEnclave(machine: machine)
            let second = try TestEnclave(machine: machine, base: 1 << 33)
            _ = try client.register(first)
            let error = try client.expectError(second.registerRequest(), descriptors: [second.fd])
            #expect(error.code == .tooManyEnclaves)
            #expect(error.detail == .limit(limit: 1, actual: 2))
        }
    }

    @Test func aConnectionBeyondTheLimitIsToldWhyAndClosed() async throws {
        try await withDaemon({ $0.limits.maxConnections = 2 }) { daemon in
            let first = try daemon.connect()
            let second = try daemon.connect()
            let third = try TestClient(path: daemon.socketPath)
            guard case .responses(let replies) = try third.receiveMessage() else {
                Issue.record("expected an error reply")
                return
            }
            #expect(replies.first?.error?.code == .tooManyConnections)
            #expect(replies.first?.error?.detail == .limit(limit: 2, actual: 3))
            #expect(third.waitForClose())
            #expect(try first.status().connections == 2)
            _ = second
        }
    }

    @Test func aMessageOverTheSizeLimitGetsMessageTooLarge() async throws {
        try await withDaemon({ $0.limits.maxMessageBytes = 4096 }) { daemon in
            let client = try daemon.connect()
            let big = [UInt8](repeating: 0, count: 6000)
            try client.sendRaw(big)
            guard case .responses(let replies) = try client.receiveMessage() else {
                Issue.record("expected an error reply")
                return
            }
            #expect(replies.first?.id == 0)
            #expect(replies.first?.error?.code == .messageTooLarge)
            #expect(try client.status().mode == .simulated)
        }
    }

    @Test func aMessageWithTooManyOperationsGetsTooManyOperations() async throws {
        try await withDaemon({ $0.limits.maxOperationsPerMessage = 4 }) { daemon in
            let client = try daemon.connect()
            try client.send(Array(repeating: .status, count: 5))
            guard case .responses(let replies) = try client.receiveMessage() else {
                Issue.record("expected an error reply")
                return
            }
            #expect(replies.first?.error?.code == .tooManyOperations)
            #expect(replies.first?.error?.detail == .limit(limit: 4, actual: 5))
        }
    }

    @Test func moreDescriptorsThanTheLimitAreAllClosedAndTheRegisterRefused() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            var pipes: [(Int32, Int32)] = []
            for _ in 0..<9 { pipes.append(try makePipe()) }
            defer { for (reader, _) in pipes { close(reader) } }
            let error = try client.expectError(enclave.registerRequest(), descriptors: pipes.map(\.1))
            #expect(error.code == .badDescriptor)
            for (_, writer) in pipes { close(writer) }
            // With every write end closed, each read end sees end of file.
            for (reader, _) in pipes {
                var byte: UInt8 = 0
                #expect(read(reader, &byte, 1) == 0)
            }
        }
    }

    @Test func repliesReadyTogetherArePackedIntoOneMessage() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let before = client.messagesReceived
            let ids = try client.send(Array(repeating: .status, count: 8))
            _ = try client.responses(to: ids)
            #expect(client.messagesReceived - before == 1)
        }
    }

    @Test func aClientThatNeverReadsItsRepliesIsDisconnectedAndNoOtherIs() async throws {
        try await withDaemon({ $0.limits.replyQueueBytes = 65_536 }) { daemon in
            let other = try daemon.connect()
            let sleeper = try daemon.connect()
            for _ in 0..<16 { _ = try? sleeper.send(Array(repeating: .status, count: 200)) }
            #expect(try eventually { try other.status().counter("connections_dropped") == 1 })
            #expect(sleeper.waitForClose())
            #expect(try other.status().connections == 1)
        }
    }
}
