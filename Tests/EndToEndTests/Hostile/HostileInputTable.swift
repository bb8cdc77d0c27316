import CEDMMShims
import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

extension EndToEnd {
    /// The hostile-input table (issue #7): each row is a client that sends what no correct client
    /// sends, against a live edmmd process while another client works. Each gets its precise error
    /// (and keeps its connection: a client can recover from its own bug) or, where the protocol
    /// says so, a disconnect of that client only. `runHostile` then checks that the daemon is up,
    /// that the bystander's results and ledger are untouched, and that nothing leaked.
    @Suite struct HostileInput {
        @Test(arguments: HostileInputTable.framing + HostileInputTable.operations)
        func aMalformedMessageGetsItsPreciseError(_ hostile: HostileCase) async throws { try await runHostile(hostile) }

        @Test(arguments: HostileInputTable.descriptors)
        func aDescriptorThatIsNoEnclaveIsRefusedAndClosed(_ hostile: HostileCase) async throws { try await runHostile(hostile) }

        @Test(arguments: HostileInputTable.ranges + HostileInputTable.ownershipAndState)
        func aRequestOnPagesOrEnclavesItMayNotTouchIsRefused(_ hostile: HostileCase) async throws { try await runHostile(hostile) }

        @Test(arguments: HostileInputTable.flowControl)
        func aClientThatFloodsStallsOrHangsAffectsNoOtherClient(_ hostile: HostileCase) async throws { try await runHostile(hostile) }

        @Test func theTableHasAtLeastThirtyRows() {
            #expect(HostileInputTable.all.count >= 30)
            #expect(Set(HostileInputTable.all.map(\.name)).count == HostileInputTable.all.count, "two rows share a name")
        }
    }
}

/// The rows, by kind.
enum HostileInputTable {
    static var all: [HostileCase] { framing + operations + descriptors + ranges + ownershipAndState + flowControl }

    // MARK: Messages that cannot be decoded (answered with id 0, verb 0)

    static let framing: [HostileCase] = [
        replyRow("truncated header", .malformedMessage) { Array(status[0..<10]) },
        replyRow("bad magic", .malformedMessage) { patched(status, at: 0, UInt32(0xDEAD_BEEF)) },
        // SOCK_SEQPACKET delivers records whole; half a request is a record whose header promises
        // more than it holds.
        replyRow("truncated record: the header promises more bytes than the record holds", .malformedMessage) {
            patched(status, at: 8, UInt32(status.count + 100))
        },
        replyRow("an operation that overruns its message", .malformedMessage) { patched(status, at: 16 + 4, UInt32(4096)) },
        replyRow("a message with no operations", .malformedMessage) { patched(Array(status[0..<16]), at: 8, UInt32(16)) },
        replyRow("reserved message flags set", .malformedMessage) { patched(status, at: 14, UInt16(1)) },
        replyRow("a response sent to the daemon", .malformedMessage) { patched(status, at: 6, UInt16(2)) },
        replyRow("random garbage", .malformedMessage) {
            var random = SplitMix64(seed: 7)
            return (0..<1000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        },
        replyRow("an unknown protocol version", .unsupportedVersion) { patched(status, at: 4, UInt16(7)) },
        HostileCase(name: "a message larger than the limit") { c in
            let connection = try c.connect()
            try connection.sendRaw([UInt8](repeating: 0x45, count: 70_000))
            let error = try connection.messageError()
            c.expect(error?.code == .messageTooLarge, "message-too-large, got \(String(describing: error))")
            c.expect(
                error?.detail == .limit(limit: 65_536, actual: 65_537),
                "the limit and the kernel-cut size, got \(String(describing: error?.detail))")
            c.expect(connection.stillServed, "the connection stays open")
        },
        HostileCase(name: "more operations than the limit") { c in
            let connection = try c.connect()
            try connection.send(Array(repeating: .status, count: 257))
            let error = try connection.messageError()
            c.expect(
                error?.code == .tooManyOperations && error?.detail == .limit(limit: 256, actual: 257),
                "too-many-operations (256, 257), got \(String(describing: error))")
            c.expect(connection.stillServed, "the connection stays open")
        },
        HostileCase(name: "an empty record, which SOCK_SEQPACKET cannot tell from the end of the stream") { c in
            let connection = try c.connect()
            try connection.sendRaw([])
            c.expect(connection.closedByDaemon(), "edmmd ends the connection")
        },
        HostileCase(name: "garbage sent over and over") { c in
            let connection = try c.connect()
            for _ in 0..<40 { try? connection.sendRaw([UInt8](repeating: 0xFF, count: 64)) }
            c.expect(connection.closedByDaemon(), "edmmd disconnects a peer that keeps sending garbage")
        },
    ]

    // MARK: Operations that cannot be decoded or are not allowed (the rest of the message proceeds)

    static let operations: [HostileCase] = [
        HostileCase(name: "an unknown verb next to a valid request") { c in
            let connection = try c.connect()
            let unknown = RawOp(verb: 77, body: []).bytes(id: 41)
            let valid = MessageCodec.encode(RequestOperation(id: 42, .status))
            try connection.sendRaw(MessageCodec.frame(.request, operations: [unknown, valid]))
            let error = try connection.reply(to: 41).error
            c.expect(error?.code == .unknownVerb, "unknown-verb, got \(String(describing: error))")
            c.expect(try connection.reply(to: 42).error == nil, "the STATUS beside it is answered")
        },
        operationRow("a truncated body", .malformedOperation) { Array(allocateBody.dropLast(3)) },
        operationRow("trailing bytes after the body", .malformedOperation) { allocateBody + [0, 0] },
        operationRow("permission bits beyond RWX", .malformedOperation) { patched(allocateBody, at: 24, UInt8(0x0B)) },
        operationRow("a bool that is neither 0 nor 1", .malformedOperation) { patched(allocateBody, at: 25, UInt8(2)) },
        HostileCase(name: "a client name that is not UTF-8") { c in
            let connection = try c.connect(hello: false)
            let body: [UInt8] = le(UInt16(1)) + le(UInt16(1)) + le(UInt16(3)) + [0xC3, 0x28, 0xFF]
            try connection.sendRaw(MessageCodec.frame(.request, operations: [RawOp(verb: Verb.hello.rawValue, body: body).bytes(id: 3)]))
            let error = try connection.reply(to: 3).error
            c.expect(error?.code == .malformedOperation, "malformed-operation, got \(String(describing: error))")
            try connection.hello()
            c.expect(connection.stillServed, "a correct HELLO still works")
        },
        HostileCase(name: "unknown flag bits") { c in
            let connection = try c.connect()
            let error = try connection.error(of: .status, flags: RequestFlags(rawValue: 0x8000))
            c.expect(error?.code == .invalidFlags, "invalid-flags, got \(String(describing: error))")
        },
        HostileCase(name: "no-reply on a verb that must answer") { c in
            let connection = try c.connect()
            let error = try connection.error(
                of: .trim(RangeRequest(enclave: c.bystanderEnclave, range: WireRange(offset: 0, length: 4096))), flags: .noReply)
            c.expect(error?.code == .invalidFlags, "invalid-flags, got \(String(describing: error))")
        },
        HostileCase(name: "a request before HELLO") { c in
            let connection = try c.connect(hello: false)
            let error = try connection.error(of: .status)
            c.expect(error?.code == .helloRequired, "hello-required, got \(String(describing: error))")
            try connection.hello()
            c.expect(connection.stillServed, "HELLO afterwards works")
        },
        HostileCase(name: "a second HELLO") { c in
            let connection = try c.connect()
            let error = try connection.error(of: .hello(HelloRequest(clientName: "again")))
            c.expect(error?.code == .invalidArgument, "invalid-argument, got \(String(describing: error))")
            c.expect(connection.stillServed, "the connection stays open")
        },
        HostileCase(name: "a HELLO with no version in common") { c in
            let connection = try c.connect(hello: false)
            let error = try connection.error(of: .hello(HelloRequest(minVersion: 5, maxVersion: 9, clientName: "future")))
            c.expect(error?.code == .unsupportedVersion, "unsupported-version, got \(String(describing: error))")
        },
        HostileCase(name: "the machine flag on a verb other than HELLO") { c in
            let connection = try c.connect()
            let error = try connection.error(of: .status, flags: .machine)
            c.expect(error?.code == .invalidFlags, "invalid-flags, got \(String(describing: error))")
        },
    ]

    // MARK: Descriptors that are not enclaves

    static let descriptors: [HostileCase] = [
        HostileCase(name: "more descriptors than the limit") { c in
            let connection = try c.connect()
            let enclave = try AttackerEnclave(machine: c.machine)
            var pipes: [(read: Int32, write: Int32)] = []
            for _ in 0..<9 { pipes.append(try makePipe()) }
            let error = try connection.error(of: registerRequest(enclave), descriptors: pipes.map(\.write))
            c.expect(error?.code == .badDescriptor, "bad-descriptor, got \(String(describing: error))")
            for pipe in pipes { close(pipe.write) }
            // edmmd closed all nine: with every write end gone, each read end sees end of file.
            var byte: UInt8 = 0
            c.expect(pipes.allSatisfy { read($0.read, &byte, 1) == 0 }, "edmmd closed every descriptor it got")
            for pipe in pipes { close(pipe.read) }
        },
        descriptorRow("a regular file") {
            let path = "/tmp/edmm-hostile-\(getpid())-file"
            let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            unlink(path)
            return fd
        },
        descriptorRow("a pipe") { try makePipe().write },
        descriptorRow("a socket") {
            var pair: [Int32] = [-1, -1]
            guard edmm_seqpacket_pair(&pair, 0) == 0 else { throw HostileSetupFailure("socketpair") }
            close(pair[1])
            return pair[0]
        },
        descriptorRow("/dev/null") { open("/dev/null", O_RDWR | O_CLOEXEC) },
        descriptorRow("a simulated enclave whose header is corrupt") { machine in
            let enclave = try SimulatedEnclave.create(machine: machine, base: 1 << 22, size: 1 << 22)
            let fd = withExtendedLifetime(enclave) { dup(enclave.fd) }
            // The header's region size (offset 16): no longer what the layout of its ELRANGE needs.
            var junk: UInt64 = 12345
            _ = pwrite(fd, &junk, 8, 16)
            return fd
        },
        descriptorRow("the simulated EPC itself instead of an enclave") { machine in dup(machine.fd) },
        descriptorRow("a simulated enclave of another machine") { _ in
            let other = try SimulatedMachine.create(.init(epcPages: 256, enclaveCapacity: 4))
            let enclave = try SimulatedEnclave.create(machine: other, base: 1 << 22, size: 1 << 22)
            return withExtendedLifetime(enclave) { dup(enclave.fd) }
        },
        HostileCase(name: "a REGISTER without its descriptor") { c in
            let connection = try c.connect()
            let error = try connection.error(of: registerRequest(try AttackerEnclave(machine: c.machine)))
            c.expect(error?.code == .badDescriptor, "bad-descriptor, got \(String(describing: error))")
        },
        HostileCase(name: "descriptors sent with a message that takes none") { c in
            let connection = try c.connect()
            let (reader, writer) = try makePipe()
            let error = try connection.error(of: .status, descriptors: [writer])
            close(writer)
            var byte: UInt8 = 0
            c.expect(error == nil, "the STATUS is answered, got \(String(describing: error))")
            c.expect(read(reader, &byte, 1) == 0, "edmmd closed the descriptor nobody claimed")
            close(reader)
        },
    ]

    // MARK: Ranges

    static let ranges: [HostileCase] = [
        rangeRow("an unaligned range", .notAligned, WireRange(offset: 100, length: 4096)),
        rangeRow("an empty range", .notAligned, WireRange(offset: 0, length: 0)),
        rangeRow("a range that wraps around 2^64", .outOfRange, WireRange(offset: UInt64.max - 4095, length: 8192)),
        rangeRow("a range beyond ELRANGE", .outOfRange, WireRange(offset: 1 << 22, length: 4096)),
        HostileCase(name: "an allocation outside the managed range") { c in
            let connection = try c.connect()
            let enclave = try AttackerEnclave(machine: c.machine)
            let request = RegisterRequest(
                base: enclave.base, size: enclave.size, label: "attacker", managed: WireRange(offset: 0, length: 64 * 4096))
            guard
                case .success(.register(let registered)) = try connection.reply(
                    to: try connection.send([.register(request)], descriptors: [enclave.fd])[0]
                ).outcome
            else { throw HostileSetupFailure("REGISTER") }
            let error = try connection.error(of: .allocate(AllocateRequest(enclave: registered.enclave, offset: 64 * 4096, length: 4096)))
            c.expect(error?.code == .outOfRange, "out-of-range, got \(String(describing: error))")
        },
    ]

    // MARK: Enclaves and pages the client may not touch

    static let ownershipAndState: [HostileCase] = [
        HostileCase(name: "a TRIM of another connection's enclave") { c in
            let connection = try c.connect()
            let error = try connection.error(
                of: .trim(RangeRequest(enclave: c.bystanderEnclave, range: WireRange(offset: 1 << 20, length: 4096))))
            c.expect(error?.code == .notOwner, "not-owner, got \(String(describing: error))")
        },
        HostileCase(name: "an UNREGISTER of another connection's enclave") { c in
            let connection = try c.connect()
            let error = try connection.error(of: .unregister(c.bystanderEnclave))
            c.expect(error?.code == .notOwner, "not-owner, got \(String(describing: error))")
            let stats = try connection.reply(to: try connection.send([.stats(c.bystanderEnclave)])[0])
            c.expect(stats.error == nil, "the bystander's enclave is still registered")
        },
        HostileCase(name: "a handle no enclave has") { c in
            let connection = try c.connect()
            let error = try connection.error(of: .sync(987_654))
            c.expect(error?.code == .unknownEnclave, "unknown-enclave, got \(String(describing: error))")
        },
        HostileCase(name: "TRIM_ACCEPTED for pages that were never trimmed") { c in
            let connection = try c.connect()
            let enclave = try c.registeredEnclave(on: connection, pages: 4)
            let error = try connection.error(
                of: .trimAccepted(RangeRequest(enclave: enclave.handle, range: WireRange(offset: 0, length: 4 * 4096))))
            c.expect(error?.code == .invalidPageState, "invalid-page-state, got \(String(describing: error))")
            if case .page(let offset, _)? = error?.detail {
                c.expect(offset == 0, "the first offending page, got \(offset)")
            } else {
                c.expect(false, "a page detail, got \(String(describing: error?.detail))")
            }
        },
        HostileCase(name: "a FREE of pages never allocated") { c in
            let connection = try c.connect()
            let enclave = try c.registeredEnclave(on: connection, pages: 1)
            let error = try connection.error(
                of: .free(RangeRequest(enclave: enclave.handle, range: WireRange(offset: 8 * 4096, length: 4096))))
            c.expect(error?.code == .invalidPageState, "invalid-page-state, got \(String(describing: error))")
        },
        HostileCase(name: "a request id replayed while it is in flight", config: "[batch]\nwindow_us = 200000\n") { c in
            let connection = try c.connect()
            let enclave = try c.registeredEnclave(on: connection, pages: 1)
            let trim = RequestOperation(id: 500, .trim(RangeRequest(enclave: enclave.handle, range: WireRange(offset: 0, length: 4096))))
            try connection.sendRaw(MessageCodec.encodeRequests([trim, RequestOperation(id: 500, .status)]))
            let first = try connection.reply(to: 500)
            let second = try connection.reply(to: 500)
            let replay = [first, second].first { $0.verb == .status }
            let original = [first, second].first { $0.verb == .trim }
            c.expect(
                replay?.error?.code == .duplicateRequestID, "duplicate-request-id for the replay, got \(String(describing: replay?.error))")
            c.expect(original != nil && original?.error == nil, "the first request completes")
        },
    ]

    // MARK: Clients that flood, stall or hang

    static let flowControl: [HostileCase] = [
        HostileCase(name: "a flood past the in-flight limit", config: "[limits]\nmax_in_flight = 16\n[batch]\nwindow_us = 200000\n") { c in
            let connection = try c.connect()
            let enclave = try c.registeredEnclave(on: connection, pages: 40)
            let ids = try connection.send(
                (0..<40).map { .trim(RangeRequest(enclave: enclave.handle, range: WireRange(offset: UInt64($0) * 4096, length: 4096))) })
            let replies = try ids.map { try connection.reply(to: $0) }
            c.expect(replies[0..<16].allSatisfy { $0.error == nil }, "the first 16 are served")
            c.expect(replies[16...].allSatisfy { $0.error?.code == .tooManyInFlight }, "every later one is too-many-in-flight")
            c.expect(
                replies[16].error?.detail == .limit(limit: 16, actual: 17),
                "with the limit, got \(String(describing: replies[16].error?.detail))")
        },
        HostileCase(name: "a reader that never reads its replies", config: "[limits]\nreply_queue = \"64KiB\"\n") { c in
            let connection = try c.connect()
            var sent = 0
            for _ in 0..<64 where (try? connection.send(Array(repeating: .status, count: 200))) != nil { sent += 1 }
            c.expect(sent > 0, "the requests were sent")
            c.expect(connection.closedByDaemon(), "edmmd disconnects it")
        },
        HostileCase(name: "a connection that never sends HELLO", config: "[limits]\nhello_timeout_ms = 300\n") { c in
            let connection = try c.connect(hello: false)
            let error = try connection.messageError()
            c.expect(error?.code == .helloRequired, "hello-required when the timeout passes, got \(String(describing: error))")
            c.expect(connection.closedByDaemon(), "then edmmd closes it")
        },
        HostileCase(name: "a connection that stops in the middle of a pipeline", config: "[batch]\nwindow_us = 100000\n") { c in
            let connection = try c.connect()
            let enclave = try c.registeredEnclave(on: connection, pages: 8)
            // Pipelined work, then nothing: no reads, no more requests, no close.
            try connection.send(
                (0..<8).map { .trim(RangeRequest(enclave: enclave.handle, range: WireRange(offset: UInt64($0) * 4096, length: 4096))) })
            try connection.send([.allocate(AllocateRequest(enclave: enclave.handle, length: 16 * 4096))])
            usleep(500_000)
            let observer = try c.connect()
            let stats = try observer.reply(to: try observer.send([.stats(enclave.handle)])[0])
            if case .success(.stats(let reply)) = stats.outcome {
                c.expect(reply.summary.trimmingPages == 8, "its trims ran: 8 pages await TRIM_ACCEPTED, got \(reply.summary.trimmingPages)")
            } else {
                c.expect(false, "STATS of the stalled client's enclave: \(stats.outcome)")
            }
            // When it finally goes, its enclave goes with it (checked by the harness).
        },
        HostileCase(name: "more connections than the limit", config: "[limits]\nmax_connections = 2\n") { c in
            let first = try c.connect()
            let refused = try c.connect(hello: false)
            let error = try refused.messageError()
            c.expect(
                error?.code == .tooManyConnections && error?.detail == .limit(limit: 2, actual: 3),
                "too-many-connections (2, 3), got \(String(describing: error))")
            c.expect(refused.closedByDaemon(), "edmmd closes the refused connection")
            c.expect(first.stillServed, "the connection within the limit is served")
        },
    ]
}
