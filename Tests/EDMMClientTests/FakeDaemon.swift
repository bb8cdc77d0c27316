import CEDMMShims
import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import SGXDevice
import SGXSimulator
import Synchronization

/// A daemon written for the tests from the codec and the socket shim, on one end of a
/// socketpair: an honest single-enclave edmmd in miniature (pool first, one ioctl per request),
/// whose answers a test can replace to make it lie. Its thread answers each request message
/// with one response message.
final class FakeDaemon: Sendable {
    /// Give this end to `EDMMConnection.connect(adoptingSocket:)` (the connection takes it).
    let clientSocket: Int32
    private let socket: Int32
    let machine: SimulatedMachine
    let limits: ProtocolLimits
    private let simulated: Bool
    /// What the daemon saw and holds. The fake daemon's thread and the test both use it.
    let state = Mutex(Books())

    struct Books {
        /// Request messages received: their operations.
        var messages: [[RequestOperation]] = []
        /// Descriptors received per message (closed by the daemon after use).
        var descriptorCounts: [Int] = []
        var enclave: SimulatedEnclave?
        var managed = PageRange(first: 256, count: 1 << 16)
        var next: UInt64 = 256
        var pool: [PageRange] = []
        var pushSequence: UInt64 = 0
        /// Replaces the honest answer to a request (return nil to answer honestly).
        var lie: (@Sendable (RequestOperation, FakeDaemon) -> ResponseOperation?)?
        /// Answers the operations of a message in reverse order, one message each.
        var reverseOrder = false
    }

    static let handle: EnclaveHandle = 7

    init(limits: ProtocolLimits = .default, simulated: Bool = true, epcPages: UInt64 = 4096) throws {
        var fds: [Int32] = [-1, -1]
        guard edmm_seqpacket_pair(&fds, 0) == 0 else { throw FakeDaemonError.system("socketpair", errno) }
        clientSocket = fds[0]
        socket = fds[1]
        self.limits = limits
        self.simulated = simulated
        machine = try SimulatedMachine.create(.init(epcPages: epcPages, enclaveCapacity: 16))
        let started = OSThread.startDetached { [self] in serve() }
        guard started else { throw FakeDaemonError.system("pthread_create", EAGAIN) }
    }

    /// Ends the conversation: the client sees end of stream.
    func stop() {
        _ = shutdown(socket, Int32(SHUT_RDWR))
    }

    deinit {
        stop()
        close(socket)
    }

    var enclave: SimulatedEnclave? { state.withLock { $0.enclave } }

    // MARK: Serving

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 1 << 17)
        while true {
            guard case .success(let received) = buffer.withUnsafeMutableBytes({ SeqpacketIO.receive(socket, into: $0) }),
                received.length > 0
            else { return }
            let n = received.length
            let descriptors = received.descriptors
            guard let decoded = try? MessageCodec.decodeRequests(Array(buffer[0..<n]), limits: limits) else { return }
            let operations = decoded.compactMap { try? $0.get() }
            let reverse = state.withLock { s in
                s.messages.append(operations)
                s.descriptorCounts.append(descriptors.count)
                return s.reverseOrder
            }
            var replies: [ResponseOperation] = []
            var replyDescriptors: [Int32] = []
            for op in operations {
                if case .hello = op.request, simulated { replyDescriptors = [machine.fd] }
                if let reply = answer(op, descriptors) { replies.append(reply) }
            }
            descriptors.forEach { close($0) }
            guard !replies.isEmpty else { continue }
            if reverse {
                for reply in replies.reversed() { send(MessageCodec.encodeResponses([reply])) }
            } else {
                send(MessageCodec.encodeResponses(replies), descriptors: replyDescriptors)
            }
        }
    }

    func send(_ bytes: [UInt8], descriptors: [Int32] = []) {
        _ = SeqpacketIO.send(socket, bytes, descriptors: descriptors)
    }

    /// Sends a RECLAIM_NOTICE for `ranges` (pages), after running EMODT(TRIM) on them as edmmd does.
    @discardableResult
    func reclaim(_ ranges: [PageRange]) -> Int32 {
        var worst: Int32 = 0
        for range in ranges {
            var p = ModifyTypesParams(offset: range.byteOffset, length: range.byteLength, pageType: UInt64(SGXPageType.trim.rawValue))
            let rc = enclave?.modifyTypes(&p) ?? ENODEV
            if rc != 0 { worst = rc }
        }
        let sequence = state.withLock { s in
            s.pool.removeAll { pooled in ranges.contains { $0.overlaps(pooled) } }
            s.pushSequence += 1
            return s.pushSequence
        }
        let notice = ReclaimNotice(enclave: Self.handle, reason: .epcPressure, ranges: ranges.map { WireRange($0) })
        send(MessageCodec.encodePushes([PushOperation(sequence: sequence, .reclaim(notice))]))
        return worst
    }

    // MARK: Honest answers

    private func answer(_ op: RequestOperation, _ descriptors: [Int32]) -> ResponseOperation? {
        if let lie = state.withLock({ $0.lie }), let reply = lie(op, self) { return reply }
        let outcome: Result<ResponseBody, WireError>
        switch op.request {
        case .hello:
            outcome = .success(
                .hello(
                    HelloReply(
                        version: 1, mode: simulated ? .simulated : .kernel, daemonVersion: "fake", daemonPID: UInt32(getpid()),
                        limits: limits, carriesMachineDescriptor: simulated)))
        case .register(let r):
            outcome = register(r, descriptors)
        case .allocate(let a):
            outcome = .success(.allocate(allocate(a)))
        case .free(let r):
            state.withLock { $0.pool.append(Self.pages(r.range)) }
            if op.flags.contains(.noReply) { return nil }
            outcome = .success(.done(DoneReply(pages: r.range.length >> Page.shift)))
        case .trim(let r):
            var p = ModifyTypesParams(offset: r.range.offset, length: r.range.length, pageType: UInt64(SGXPageType.trim.rawValue))
            outcome = ioctl(r.range, .modifyTypes) { $0.modifyTypes(&p) }
        case .makeTCS(let r):
            var p = ModifyTypesParams(offset: r.range.offset, length: r.range.length, pageType: UInt64(SGXPageType.tcs.rawValue))
            outcome = ioctl(r.range, .modifyTypes) { $0.modifyTypes(&p) }
        case .trimAccepted(let r):
            var p = RemovePagesParams(offset: r.range.offset, length: r.range.length)
            outcome = ioctl(r.range, .removePages) { $0.removePages(&p) }
        case .restrict(let r):
            var p = RestrictPermissionsParams(offset: r.range.offset, length: r.range.length, permissions: UInt64(r.permissions.rawValue))
            outcome = ioctl(r.range, .restrictPermissions) { $0.restrictPermissions(&p) }
        case .relax(let r):
            if op.flags.contains(.noReply) { return nil }
            outcome = .success(.done(DoneReply(pages: r.range.length >> Page.shift)))
        case .sync, .unregister:
            outcome = .success(.done(DoneReply(pages: 0)))
        default:
            outcome = .failure(WireError(.unknownVerb, "the fake daemon does not do \(op.request.verb)"))
        }
        return ResponseOperation(id: op.id, verb: op.request.verb, outcome: outcome)
    }

    private func register(_ r: RegisterRequest, _ descriptors: [Int32]) -> Result<ResponseBody, WireError> {
        guard Int(r.descriptorIndex) < descriptors.count else { return .failure(WireError(.badDescriptor, "no descriptor")) }
        do {
            let enclave = try SimulatedEnclave.open(fd: descriptors[Int(r.descriptorIndex)], machine: machine, mapContents: false)
            let managed = Self.pages(r.managed)
            var preheat: [WireRange] = []
            state.withLock { s in
                s.enclave = enclave
                s.managed = managed
                s.next = managed.first
                if r.preheatPages > 0 {
                    preheat = [WireRange(PageRange(first: s.next, count: r.preheatPages))]
                    s.next += r.preheatPages
                }
            }
            return .success(.register(RegisterReply(enclave: Self.handle, device: .simulated, quotaPages: .max, preheat: preheat)))
        } catch {
            return .failure(WireError(.badDescriptor, "\(error)"))
        }
    }

    /// Pool first (the lowest pooled range that fits), else fresh pages at the top.
    func allocate(_ a: AllocateRequest) -> AllocateReply {
        let count = a.length >> Page.shift
        return state.withLock { s in
            if a.offset == WireRange.anywhere, let index = s.pool.firstIndex(where: { $0.count >= count }) {
                let run = s.pool[index]
                let granted = PageRange(first: run.first, count: count)
                if run.count == count {
                    s.pool.remove(at: index)
                } else {
                    s.pool[index] = PageRange(first: run.first + count, end: run.end)
                }
                return AllocateReply(granted: WireRange(granted), permissions: .rw, reused: [WireRange(granted)], fresh: [])
            }
            let granted =
                a.offset == WireRange.anywhere
                ? PageRange(first: s.next, count: count) : Self.pages(WireRange(offset: a.offset, length: a.length))
            if a.offset == WireRange.anywhere { s.next += count }
            return AllocateReply(granted: WireRange(granted), permissions: .rw, reused: [], fresh: [WireRange(granted)])
        }
    }

    private func ioctl(_ range: WireRange, _ kind: WireIoctl, _ body: (SimulatedEnclave) -> Int32) -> Result<ResponseBody, WireError> {
        guard let enclave else { return .failure(WireError(.unknownEnclave, "not registered")) }
        let rc = body(enclave)
        guard rc == 0 else {
            return .failure(WireError(.kernelError, "ioctl failed", detail: .kernel(ioctl: kind, errno: rc, countBytes: 0, result: nil)))
        }
        return .success(.done(DoneReply(pages: range.length >> Page.shift, ioctls: 1, batchedRequests: 1)))
    }

    static func pages(_ range: WireRange) -> PageRange {
        PageRange(first: range.offset >> Page.shift, count: max(1, range.length >> Page.shift))
    }
}

enum FakeDaemonError: Error {
    case system(String, Int32)
}
