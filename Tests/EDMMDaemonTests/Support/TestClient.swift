import CEDMMShims
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc

/// A minimal edmmd client made of the codec and the socket shim: blocking sends, receives with a
/// deadline, replies matched by id (others and pushes are kept for later).
final class TestClient {
    enum Failure: Error, CustomStringConvertible {
        case system(String, Int32)
        case timeout(String)
        case closed
        case unexpected(String)

        var description: String {
            switch self {
            case .system(let call, let errno): "\(call): errno \(errno)"
            case .timeout(let what): "timed out waiting for \(what)"
            case .closed: "the daemon closed the connection"
            case .unexpected(let what): what
            }
        }
    }

    let fd: Int32
    private var nextID: UInt64 = 1
    private var responses: [ResponseOperation] = []
    var pushes: [PushOperation] = []
    /// Descriptors received with messages (the machine memfd after HELLO).
    var receivedDescriptors: [Int32] = []
    /// Messages received, by kind, for tests about packing.
    var messagesReceived = 0

    init(path: String) throws {
        let fd = edmm_seqpacket_connect(path, 0)
        guard fd >= 0 else { throw Failure.system("connect \(path)", errno) }
        self.fd = fd
    }

    /// Adopts an already connected socket.
    init(connected fd: Int32) {
        self.fd = fd
    }

    deinit {
        close(fd)
        for descriptor in receivedDescriptors { close(descriptor) }
    }

    func newID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    // MARK: Sending

    func sendRaw(_ bytes: [UInt8], descriptors: [Int32] = []) throws {
        switch SeqpacketIO.send(fd, bytes, descriptors: descriptors) {
        case .success(let sent) where sent == bytes.count: break
        case .success: throw Failure.system("send", EMSGSIZE)
        case .failure(let failure): throw Failure.system("send", failure.errno)
        }
    }

    /// Sends the operations in one message; returns their ids.
    @discardableResult
    func send(_ requests: [Request], flags: RequestFlags = [], descriptors: [Int32] = []) throws -> [UInt64] {
        let operations = requests.map { RequestOperation(id: newID(), flags: flags, $0) }
        try sendRaw(MessageCodec.encodeRequests(operations), descriptors: descriptors)
        return operations.map(\.id)
    }

    // MARK: Receiving

    /// Waits up to `timeout` for one message; nil on end of stream.
    func receiveMessage(timeout: Duration = .seconds(10)) throws -> ServerMessage? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let ready = poll(&poller, 1, millis)
        guard ready > 0 else { throw Failure.timeout("a message from edmmd") }
        var buffer = [UInt8](repeating: 0, count: 70_000)
        let received: SeqpacketIO.Received
        switch buffer.withUnsafeMutableBytes({ SeqpacketIO.receive(fd, into: $0, maxDescriptors: 8) }) {
        // Unread requests make the daemon's close a reset.
        case .failure(let failure) where failure.errno == ECONNRESET: return nil
        case .failure(let failure): throw Failure.system("recv", failure.errno)
        case .success(let message): received = message
        }
        receivedDescriptors += received.descriptors
        let n = received.length
        guard n > 0 else { return nil }
        messagesReceived += 1
        let message = try MessageCodec.decodeServerMessage(Array(buffer[0..<n]), limits: .default)
        switch message {
        case .responses(let operations): responses += operations
        case .pushes(let operations): pushes += operations
        }
        return message
    }

    /// The reply to `id`, waiting for it if needed.
    func response(to id: UInt64, timeout: Duration = .seconds(10)) throws -> ResponseOperation {
        while true {
            if let index = responses.firstIndex(where: { $0.id == id }) { return responses.remove(at: index) }
            guard try receiveMessage(timeout: timeout) != nil else { throw Failure.closed }
        }
    }

    /// Every reply for these ids, in the order of the ids.
    func responses(to ids: [UInt64], timeout: Duration = .seconds(10)) throws -> [ResponseOperation] {
        try ids.map { try response(to: $0, timeout: timeout) }
    }

    /// The next push, waiting for it if needed.
    func nextPush(timeout: Duration = .seconds(10)) throws -> PushOperation {
        while pushes.isEmpty {
            guard try receiveMessage(timeout: timeout) != nil else { throw Failure.closed }
        }
        return pushes.removeFirst()
    }

    /// Replies received but not yet taken.
    var unclaimedResponses: [ResponseOperation] { responses }

    /// True once the daemon has closed the connection (end of stream within `timeout`).
    func waitForClose(timeout: Duration = .seconds(10)) -> Bool {
        do {
            while try receiveMessage(timeout: timeout) != nil {}
            return true
        } catch {
            return false
        }
    }

    // MARK: Requests

    func call(
        _ request: Request, flags: RequestFlags = [], descriptors: [Int32] = [], timeout: Duration = .seconds(10)
    ) throws -> ResponseOperation {
        let ids = try send([request], flags: flags, descriptors: descriptors)
        return try response(to: ids[0], timeout: timeout)
    }

    /// The reply body of a request that must succeed.
    func expect(_ request: Request, descriptors: [Int32] = []) throws -> ResponseBody {
        let reply = try call(request, descriptors: descriptors)
        switch reply.outcome {
        case .success(let body): return body
        case .failure(let error): throw Failure.unexpected("\(request.verb) failed: \(error)")
        }
    }

    /// The error of a request that must fail.
    func expectError(_ request: Request, descriptors: [Int32] = []) throws -> WireError {
        let reply = try call(request, descriptors: descriptors)
        switch reply.outcome {
        case .success(let body): throw Failure.unexpected("\(request.verb) succeeded: \(body)")
        case .failure(let error): return error
        }
    }

    @discardableResult
    func hello(name: String = "daemon-tests") throws -> HelloReply {
        guard case .hello(let reply) = try expect(.hello(HelloRequest(clientName: name))) else {
            throw Failure.unexpected("HELLO answered with another body")
        }
        return reply
    }

    func done(_ request: Request) throws -> DoneReply {
        guard case .done(let reply) = try expect(request) else { throw Failure.unexpected("\(request.verb): not a done reply") }
        return reply
    }

    func allocate(_ request: AllocateRequest) throws -> AllocateReply {
        guard case .allocate(let reply) = try expect(.allocate(request)) else { throw Failure.unexpected("not an allocate reply") }
        return reply
    }

    func status() throws -> StatusReply {
        guard case .status(let reply) = try expect(.status) else { throw Failure.unexpected("not a status reply") }
        return reply
    }

    func stats(_ enclave: EnclaveHandle) throws -> EnclaveStatsReply {
        guard case .stats(let reply) = try expect(.stats(enclave)) else { throw Failure.unexpected("not a stats reply") }
        return reply
    }
}

extension EnclaveStatsReply {
    func counter(_ name: String) -> UInt64? { counters.first { $0.name == name }?.value }
}

extension StatusReply {
    func counter(_ name: String) -> UInt64? { counters.first { $0.name == name }?.value }
}

extension ResponseOperation {
    var error: WireError? {
        if case .failure(let error) = outcome { return error }
        return nil
    }

    var done: DoneReply? {
        if case .success(.done(let reply)) = outcome { return reply }
        return nil
    }
}
