import CEDMMShims
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc

/// A connection to edmmd that sends exactly the bytes and descriptors a test gives it, and reads
/// whatever comes back: replies are matched by id, pushes kept. What a buggy or hostile client
/// looks like to the daemon. Closed on deinit.
final class RawConnection {
    enum Failure: Error, CustomStringConvertible {
        case system(String, Int32)
        case timeout
        case closed

        var description: String {
            switch self {
            case .system(let call, let code): "\(call): \(String(cString: strerror(code)))"
            case .timeout: "no message from edmmd in time"
            case .closed: "edmmd closed the connection"
            }
        }
    }

    let fd: Int32
    private var nextID: UInt64 = 1
    private var responses: [ResponseOperation] = []
    /// Descriptors that came with messages (the simulated EPC after HELLO).
    private(set) var receivedDescriptors: [Int32] = []

    init(socketPath: String) throws {
        fd = edmm_seqpacket_connect(socketPath, 0)
        guard fd >= 0 else { throw Failure.system("connect \(socketPath)", errno) }
    }

    init(adopting fd: Int32) { self.fd = fd }

    deinit {
        close(fd)
        receivedDescriptors.forEach { close($0) }
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

    /// Sends the requests in one message; returns their ids.
    @discardableResult
    func send(_ requests: [Request], flags: RequestFlags = [], descriptors: [Int32] = []) throws -> [UInt64] {
        let operations = requests.map { RequestOperation(id: newID(), flags: flags, $0) }
        try sendRaw(MessageCodec.encodeRequests(operations), descriptors: descriptors)
        return operations.map(\.id)
    }

    // MARK: Receiving

    /// The next message, waiting up to `timeout`; nil once edmmd closed the connection.
    func receive(timeout: Duration = .seconds(20)) throws -> ServerMessage? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&poller, 1, millis) > 0 else { throw Failure.timeout }
        var buffer = [UInt8](repeating: 0, count: 70_000)
        let received: SeqpacketIO.Received
        switch buffer.withUnsafeMutableBytes({ SeqpacketIO.receive(fd, into: $0, maxDescriptors: 8) }) {
        case .failure(let failure) where failure.errno == ECONNRESET: return nil
        case .failure(let failure): throw Failure.system("recv", failure.errno)
        case .success(let message): received = message
        }
        receivedDescriptors += received.descriptors
        let n = received.length
        guard n > 0 else { return nil }
        let message = try MessageCodec.decodeServerMessage(Array(buffer[0..<n]), limits: .default)
        if case .responses(let operations) = message { responses += operations }
        return message
    }

    /// The reply to `id`.
    func reply(to id: UInt64) throws -> ResponseOperation {
        while true {
            if let index = responses.firstIndex(where: { $0.id == id }) { return responses.remove(at: index) }
            guard try receive() != nil else { throw Failure.closed }
        }
    }

    /// The error a request got (nil if it succeeded).
    func error(of request: Request, flags: RequestFlags = [], descriptors: [Int32] = []) throws -> WireError? {
        try reply(to: try send([request], flags: flags, descriptors: descriptors)[0]).error
    }

    /// The reply to a message that could not be attributed to a request (id 0, verb 0).
    func messageError() throws -> WireError? { try reply(to: 0).error }

    /// HELLO, which must succeed.
    func hello() throws {
        if let error = try error(of: .hello(HelloRequest(clientName: "hostile"))) { throw error }
    }

    /// True once edmmd has closed the connection (replies before the end are read and dropped).
    func closedByDaemon(within timeout: Duration = .seconds(20)) -> Bool {
        do {
            while try receive(timeout: timeout) != nil {}
            return true
        } catch {
            return false
        }
    }

    /// The connection still works: a STATUS on it is answered.
    var stillServed: Bool { (try? error(of: .status)) == .some(nil) }
}

extension ResponseOperation {
    var error: WireError? {
        if case .failure(let error) = outcome { return error }
        return nil
    }
}
