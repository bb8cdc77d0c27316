import CEDMMShims
import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import Synchronization
import Testing

/// The client library against a fake daemon on a socketpair, and against real socket paths.
@Suite struct ConnectionTests {
    func connect(_ daemon: FakeDaemon, events: (@Sendable (ConnectionEvent) -> Void)? = nil) async throws -> EDMMConnection {
        try await EDMMConnection.connect(adoptingSocket: daemon.clientSocket, clientName: "tests", events: events)
    }

    @Test func connectingWhereNoSocketExistsNamesThePath() async throws {
        let path = "/tmp/edmm-client-test-\(getpid())-missing.sock"
        await #expect(throws: EDMMClientError.socketMissing(path: path)) {
            _ = try await EDMMConnection.connect(socketPath: path)
        }
    }

    @Test func connectingToASocketNobodyAcceptsOnIsRefused() async throws {
        let path = "/tmp/edmm-client-test-\(getpid())-stale.sock"
        // A socket file left behind by a listener that is gone.
        let fd = path.withCString { edmm_seqpacket_listen($0, 1, 0) }
        try #require(fd >= 0)
        close(fd)
        defer { unlink(path) }
        await #expect(throws: EDMMClientError.connectionRefused(path: path)) {
            _ = try await EDMMConnection.connect(socketPath: path)
        }
    }

    @Test func connectErrorsMapToWhatAUserCanActOn() {
        #expect(EDMMClientError.connecting(to: "/s", errno: EACCES) == .permissionDenied(path: "/s"))
        #expect(EDMMClientError.connecting(to: "/s", errno: ENOENT) == .socketMissing(path: "/s"))
        #expect(EDMMClientError.connecting(to: "/s", errno: ECONNREFUSED) == .connectionRefused(path: "/s"))
        #expect(EDMMClientError.connecting(to: "/s", errno: ENAMETOOLONG) == .connectFailed(path: "/s", errno: ENAMETOOLONG))
        #expect(EDMMClientError.permissionDenied(path: "/run/edmmd/control.sock").description.contains("/run/edmmd/control.sock"))
    }

    @Test func helloRecordsTheDaemonsLimitsModeAndSimulatedEPC() async throws {
        var limits = ProtocolLimits()
        limits.maxOperationsPerMessage = 17
        let daemon = try FakeDaemon(limits: limits)
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        #expect(connection.hello.mode == .simulated)
        #expect(connection.limits.maxOperationsPerMessage == 17)
        let machineFD = try #require(connection.machineDescriptor)
        #expect(fcntl(machineFD, F_GETFD) >= 0)
        // The first message was HELLO alone.
        let first = daemon.state.withLock { $0.messages.first }
        #expect(first?.map(\.request.verb) == [.hello])
    }

    @Test func aKernelModeDaemonHandsOverNoDescriptor() async throws {
        let daemon = try FakeDaemon(simulated: false)
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        #expect(connection.hello.mode == .kernel)
        #expect(connection.machineDescriptor == nil)
    }

    @Test func aBatchWithinTheLimitsTravelsInOneMessage() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        let requests = (0..<10).map { Request.sync(EnclaveHandle($0 + 1)) }
        let submission = try await connection.submit(requests.map { OutgoingRequest($0) })
        #expect(submission.messages == 1)
        let replies = await submission.replies()
        #expect(replies.count == 10)
        #expect(replies.allSatisfy { (try? $0.get()) != nil })
        #expect(daemon.state.withLock { $0.messages.last?.count } == 10)
    }

    @Test func aBatchBeyondTheDaemonsOperationLimitIsSplit() async throws {
        var limits = ProtocolLimits()
        limits.maxOperationsPerMessage = 4
        let daemon = try FakeDaemon(limits: limits)
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        let submission = try await connection.submit((1...10).map { OutgoingRequest(.sync($0)) })
        #expect(submission.messages == 3)
        _ = await submission.replies()
        #expect(daemon.state.withLock { $0.messages.dropFirst().map(\.count) } == [4, 4, 2])
    }

    @Test func aBatchBeyondTheDaemonsByteLimitIsSplit() async throws {
        var limits = ProtocolLimits()
        limits.maxMessageBytes = 16 + 3 * 24  // room for three SYNC operations (16-byte header + 8-byte body)
        let daemon = try FakeDaemon(limits: limits)
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        let submission = try await connection.submit((1...7).map { OutgoingRequest(.sync($0)) })
        _ = await submission.replies()
        #expect(daemon.state.withLock { $0.messages.dropFirst().map(\.count) } == [3, 3, 1])
    }

    @Test func theInFlightLimitHoldsBackTheRestOfABatch() async throws {
        var limits = ProtocolLimits()
        limits.maxInFlightRequests = 2
        let daemon = try FakeDaemon(limits: limits)
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        let submission = try await connection.submit((1...5).map { OutgoingRequest(.sync($0)) })
        let replies = await submission.replies()
        #expect(replies.allSatisfy { (try? $0.get()) != nil })
        #expect(daemon.state.withLock { $0.messages.dropFirst().map(\.count) } == [2, 2, 1])
    }

    @Test func repliesAreMatchedByIdWhenTheyArriveOutOfOrder() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        daemon.state.withLock { $0.reverseOrder = true }
        let ranges = (1...3).map { WireRange(offset: UInt64($0) << 12, length: UInt64($0) << 12) }
        let replies = try await connection.batch(ranges.map { .free(RangeRequest(enclave: 7, range: $0)) })
        let pages = replies.map { result -> UInt64? in
            guard case .done(let d)? = try? result.get() else { return nil }
            return d.pages
        }
        #expect(pages == [1, 2, 3])
    }

    @Test func registrationsPassTheirDescriptorsIndexedWithinEachMessage() async throws {
        var limits = ProtocolLimits()
        limits.maxDescriptorsPerMessage = 1
        let daemon = try FakeDaemon(limits: limits)
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        var pipeFDs: [Int32] = [-1, -1]
        try #require(pipe(&pipeFDs) == 0)
        defer { pipeFDs.forEach { close($0) } }
        let register = { (fd: Int32) in
            OutgoingRequest(.register(RegisterRequest(base: 1 << 30, size: 1 << 30, label: "x")), descriptor: fd)
        }
        let submission = try await connection.submit([register(pipeFDs[0]), register(pipeFDs[1])])
        _ = await submission.replies()
        let (messages, descriptors) = daemon.state.withLock { ($0.messages.dropFirst(), $0.descriptorCounts.dropFirst()) }
        #expect(submission.messages == 2)
        #expect(Array(descriptors) == [1, 1])
        let indices = messages.flatMap { $0 }.compactMap { op -> UInt8? in
            if case .register(let r) = op.request { return r.descriptorIndex }
            return nil
        }
        #expect(indices == [0, 0])
    }

    @Test func aDaemonErrorArrivesTypedWithItsNumbers() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        let refusal = WireError(
            .quotaExceeded, "enclave quota", detail: .quota(scope: .enclave, askedPages: 64, usedPages: 960, limitPages: 1000))
        daemon.state.withLock { s in
            s.lie = { op, _ in
                guard case .allocate = op.request else { return nil }
                return ResponseOperation(id: op.id, verb: .allocate, outcome: .failure(refusal))
            }
        }
        await #expect(throws: EDMMClientError.daemon(refusal)) {
            _ = try await connection.allocate(AllocateRequest(enclave: 7, length: 64 << 12))
        }
    }

    @Test func fireAndForgetReturnsAtOnceAndItsFailureArrivesAsAnEvent() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let events = EventLog()
        let connection = try await connect(daemon, events: events.record)
        daemon.state.withLock { s in
            s.lie = { op, _ in
                guard case .free(let r) = op.request, r.range.offset == 0x5000 else { return nil }
                return ResponseOperation(id: op.id, verb: .free, outcome: .failure(WireError(.invalidPageState, "not committed")))
            }
        }
        let fine = try await connection.free(7, WireRange(offset: 0x1000, length: 0x1000), fireAndForget: true)
        #expect(fine == nil)
        let submission = try await connection.submit([
            OutgoingRequest(.free(RangeRequest(enclave: 7, range: WireRange(offset: 0x5000, length: 0x1000))), fireAndForget: true)
        ])
        try await connection.sync(7)  // the fake answers in order: the failure came before this
        let failed = events.events.compactMap { event -> (UInt64, WireErrorCode)? in
            if case .fireAndForgetFailed(let id, _, let error) = event { return (id, error.code) }
            return nil
        }
        #expect(failed.map(\.0) == submission.ids)
        #expect(failed.map(\.1) == [.invalidPageState])
    }

    @Test func fireAndForgetIsOnlyForFreeAndRelax() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        await #expect(throws: EDMMClientError.self) {
            _ = try await connection.submit([
                OutgoingRequest(.trim(RangeRequest(enclave: 7, range: WireRange(offset: 0, length: 4096))), fireAndForget: true)
            ])
        }
    }

    @Test func pushesReachTheEventHandler() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let events = EventLog()
        let connection = try await connect(daemon, events: events.record)
        daemon.send(MessageCodec.encodePushes([PushOperation(sequence: 1, .shutdown(ShutdownNotice(restarting: false, message: "bye")))]))
        try await connection.sync(7)
        let pushes = events.events.compactMap { event -> Push? in
            if case .push(let p) = event { return p.push }
            return nil
        }
        #expect(pushes == [.shutdown(ShutdownNotice(restarting: false, message: "bye"))])
    }

    @Test func theDaemonClosingTheConnectionFailsWhatIsOutstanding() async throws {
        let daemon = try FakeDaemon()
        let events = EventLog()
        let connection = try await connect(daemon, events: events.record)
        daemon.state.withLock { s in
            s.lie = { op, d in
                if case .sync = op.request { d.stop() }
                return nil
            }
        }
        await #expect(throws: EDMMClientError.daemonClosedConnection) { try await connection.sync(7) }
        #expect(connection.closedReason == .daemonClosedConnection)
        await #expect(throws: EDMMClientError.daemonClosedConnection) { try await connection.sync(7) }
        let closed = events.events.filter { if case .closed = $0 { true } else { false } }
        #expect(closed.count == 1)
    }

    @Test func anUndecodableMessageIsAProtocolViolation() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        daemon.state.withLock { s in
            s.lie = { op, d in
                if case .sync = op.request { d.send([0x45, 0x44, 0x4D, 0x4D, 9, 9]) }
                return nil
            }
        }
        await #expect {
            try await connection.sync(7)
        } throws: { error in
            if case EDMMClientError.protocolViolation = error { return true }
            return false
        }
    }

    @Test func aMessageLevelErrorFailsTheOutstandingRequests() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        let error = WireError(.malformedMessage, "bad magic")
        daemon.state.withLock { s in
            s.lie = { op, _ in
                guard case .sync = op.request else { return nil }
                return ResponseOperation(id: 0, verbCode: 0, outcome: .failure(error))
            }
        }
        await #expect(throws: EDMMClientError.daemon(error)) { try await connection.sync(7) }
    }

    @Test func aReplyOfTheWrongShapeIsAProtocolViolation() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let connection = try await connect(daemon)
        daemon.state.withLock { s in
            s.lie = { op, _ in
                guard case .sync = op.request else { return nil }
                return ResponseOperation(id: op.id, verb: .status, outcome: .success(.done(DoneReply(pages: 0))))
            }
        }
        await #expect {
            try await connection.sync(7)
        } throws: { error in
            if case EDMMClientError.protocolViolation = error { return true }
            return false
        }
    }
}

/// Collects connection events (delivered on the reader thread).
final class EventLog: Sendable {
    private let log = Mutex<[ConnectionEvent]>([])
    var events: [ConnectionEvent] { log.withLock { $0 } }
    var record: @Sendable (ConnectionEvent) -> Void { { [self] event in log.withLock { $0.append(event) } } }
}
