import EDMMProtocol
import Glibc

/// A connection to edmmd over its control socket (docs/protocol.md).
///
/// Requests pipeline: `submit` sends a whole batch (packed into as few messages as the daemon's
/// limits allow) and returns at once; replies are matched by id as they arrive, in any order.
/// The `async` verbs (`allocate`, `trim`, ...) are one-request batches. Pushes and the errors of
/// fire-and-forget requests go to the event handler given to `connect`.
///
/// Safe to use from any thread or task. Closing (or dropping the last reference) fails every
/// outstanding request with `closedByClient`.
public final class EDMMConnection: Sendable {
    public let socketPath: String
    /// The daemon's HELLO reply: negotiated version, mode, limits.
    public let hello: HelloReply
    /// In simulated mode, the daemon's simulated EPC (its machine memfd) in which a host creates
    /// its simulated enclaves. Owned by the connection and closed with it.
    public let machineDescriptor: Int32?
    let core: ConnectionCore

    private init(socketPath: String, hello: HelloReply, machineDescriptor: Int32?, core: ConnectionCore) {
        self.socketPath = socketPath
        self.hello = hello
        self.machineDescriptor = machineDescriptor
        self.core = core
    }

    deinit {
        core.finish(.closedByClient)
        if let machineDescriptor { Glibc.close(machineDescriptor) }
    }

    /// Connects to the daemon at `socketPath` and says HELLO. A host whose simulated enclaves
    /// already exist passes their EPC (`simulatedMachine`, a machine memfd; borrowed): a daemon
    /// restarted without its FD store then takes that EPC over instead of its own fresh one, so
    /// the enclaves can register again (docs/protocol.md, HELLO).
    public static func connect(
        socketPath: String, clientName: String = "edmm-client", simulatedMachine: Int32? = nil,
        events: (@Sendable (ConnectionEvent) -> Void)? = nil
    ) async throws(EDMMClientError) -> EDMMConnection {
        let transport = try SocketTransport.connect(path: socketPath)
        return try await handshake(
            transport, socketPath: socketPath, clientName: clientName, simulatedMachine: simulatedMachine, events: events)
    }

    /// Takes ownership of an already connected SOCK_SEQPACKET socket (socket activation, a
    /// socketpair in tests) and says HELLO.
    public static func connect(
        adoptingSocket fd: Int32, clientName: String = "edmm-client", events: (@Sendable (ConnectionEvent) -> Void)? = nil
    ) async throws(EDMMClientError) -> EDMMConnection {
        try await handshake(.adopting(fd), socketPath: "fd \(fd)", clientName: clientName, simulatedMachine: nil, events: events)
    }

    private static func handshake(
        _ transport: SocketTransport, socketPath: String, clientName: String, simulatedMachine: Int32?,
        events: (@Sendable (ConnectionEvent) -> Void)?
    ) async throws(EDMMClientError) -> EDMMConnection {
        let core = ConnectionCore(transport: transport, events: events)
        try core.start()
        let request = HelloRequest(
            minVersion: ProtocolVersion.supported.lowerBound, maxVersion: ProtocolVersion.supported.upperBound,
            clientName: clientName)
        let reply: Reply
        do throws(EDMMClientError) {
            let submission = try await core.submit([OutgoingRequest(.hello(request), descriptor: simulatedMachine)])
            guard let first = try await submission.replies().first?.get() else {
                throw .protocolViolation("no HELLO reply")
            }
            reply = first
        } catch {
            core.finish(.closedByClient)
            throw error
        }
        guard case .hello(let hello) = reply.body, ProtocolVersion.supported.contains(hello.version) else {
            reply.descriptors.forEach { _ = Glibc.close($0) }
            core.finish(.closedByClient)
            throw .incompatibleDaemon("HELLO answered with an unsupported version")
        }
        if hello.carriesMachineDescriptor && reply.descriptors.count != 1 {
            reply.descriptors.forEach { _ = Glibc.close($0) }
            core.finish(.closedByClient)
            throw .protocolViolation("HELLO promised the simulated EPC descriptor and carried \(reply.descriptors.count)")
        }
        core.adopt(hello.limits)
        return EDMMConnection(socketPath: socketPath, hello: hello, machineDescriptor: reply.descriptors.first, core: core)
    }

    /// The daemon's limits, as announced in HELLO.
    public var limits: ProtocolLimits { hello.limits }

    /// Set once the connection has ended, with the reason.
    public var closedReason: EDMMClientError? { core.failure }

    /// Requests sent and not answered yet, by verb (fire-and-forget requests are not counted).
    public var requestsInFlight: [Verb: Int] { core.inFlight }

    /// Closes the connection; outstanding requests fail with `closedByClient`.
    public func close() { core.finish(.closedByClient) }

    // MARK: Batches

    /// Sends `requests` in as few messages as the daemon's limits allow (waiting if the
    /// in-flight limit is reached) and returns without waiting for replies.
    public func submit(_ requests: [OutgoingRequest]) async throws(EDMMClientError) -> Submission {
        try await core.submit(requests)
    }

    /// Sends a batch and waits for every reply, in request order.
    public func batch(_ requests: [Request]) async throws(EDMMClientError) -> [Result<ResponseBody, EDMMClientError>] {
        let submission = try await submit(requests.map { OutgoingRequest($0) })
        return await submission.replies().map { result in
            result.flatMap { reply in
                reply.map { .success($0.body) } ?? .failure(.protocolViolation("missing reply"))
            }
        }
    }

    /// Sends one request and waits for its reply.
    public func perform(_ request: Request) async throws(EDMMClientError) -> ResponseBody {
        let results = try await batch([request])
        guard let first = results.first else { throw .protocolViolation("missing reply") }
        return try first.get()
    }
}
