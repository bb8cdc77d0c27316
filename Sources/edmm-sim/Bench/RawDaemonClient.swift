import CEDMMShims
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc

/// A connection to edmmd with nothing between the bench and the socket, as the raw peer has:
/// each request encoded before the clock starts, one send(2), one recvmsg(2) blocked until the
/// reply, and the reply decoded after the clock stops. What edmmd adds to a round trip, without
/// the client library's reader thread and task hand-off (measured apart: `DaemonProbe`).
/// Used from one thread.
final class RawDaemonClient {
    private let fd: Int32
    private let enclave: EnclaveHandle
    private var nextID: UInt64 = 1
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Connects, says HELLO and ATTACHes `enclave` (registered by this process's probe).
    init(socketPath: String, enclave: EnclaveHandle) throws {
        fd = socketPath.withCString { edmm_seqpacket_connect($0, 0) }
        guard fd >= 0 else { throw Failure(description: "connect \(socketPath): \(String(cString: strerror(errno)))") }
        self.enclave = enclave
        _ = try exchange(.hello(HelloRequest(clientName: "edmm-sim bench raw client")))
        _ = try exchange(.attach(enclave))
    }

    deinit {
        close(fd)
        buffer.deallocate()
    }

    /// ALLOCATE of one fresh page (never accepted, as the probe's): its round trip.
    func allocateFresh() throws -> Duration {
        let (body, elapsed) = try exchange(.allocate(AllocateRequest(enclave: enclave, length: Page.size)))
        guard case .allocate(let grant) = body, !grant.fresh.isEmpty else { throw Failure(description: "ALLOCATE granted no fresh page") }
        return elapsed
    }

    /// `count` requests, at most `window` in flight, each in a message of its own encoded before
    /// the clock starts (as the raw peer's pipelined echo): FREE then ALLOCATE of the same page,
    /// over `slots` in turn. Replies are counted from the messages' headers (edmmd packs replies
    /// ready together into one message), and each must be a success.
    func pipelined(_ count: Int, window: Int, over slots: PageRange) throws -> Duration {
        let messages = (0..<count).map { index -> [UInt8] in
            let page = WireRange(offset: (slots.first + UInt64(index / 2) % slots.count) << Page.shift, length: Page.size)
            let request: Request =
                index % 2 == 0
                ? .free(RangeRequest(enclave: enclave, range: page))
                : .allocate(AllocateRequest(enclave: enclave, offset: page.offset, length: Page.size))
            defer { nextID += 1 }
            return MessageCodec.encodeRequests([RequestOperation(id: nextID, request)])
        }
        var sent = 0
        var answered = 0
        let start = ContinuousClock.now
        while answered < count {
            if sent < count, sent - answered < window {
                if case .failure(let failure) = SeqpacketIO.send(fd, messages[sent]) {
                    throw Failure(description: "send: \(String(cString: strerror(failure.errno)))")
                }
                sent += 1
                continue
            }
            answered += try receiveSuccesses()
        }
        return ContinuousClock.now - start
    }

    /// Reads one message; the number of successful replies it carries (a push counts none).
    private func receiveSuccesses() throws -> Int {
        guard case .success(let received) = SeqpacketIO.receive(fd, into: buffer), received.length >= WireSize.messageHeader else {
            throw Failure(description: "recv: \(String(cString: strerror(errno)))")
        }
        received.closeDescriptors()
        let message = UnsafeRawBufferPointer(rebasing: buffer[0..<received.length])
        guard UInt16(littleEndian: message.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) == MessageKind.response.rawValue else {
            return 0
        }
        let replies = Int(UInt16(littleEndian: message.loadUnaligned(fromByteOffset: 12, as: UInt16.self)))
        var offset = WireSize.messageHeader
        for _ in 0..<replies {
            guard offset + WireSize.operationHeader <= message.count else {
                throw Failure(description: "a reply overruns its message")
            }
            let status = UInt16(littleEndian: message.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self))
            guard status == 0 else { throw Failure(description: "a pipelined request failed with error \(status)") }
            let body = UInt32(littleEndian: message.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
            offset += WireSize.operationHeader + Int(body)
        }
        return replies
    }

    private func exchange(_ request: Request) throws -> (ResponseBody, Duration) {
        let id = nextID
        nextID += 1
        let message = MessageCodec.encodeRequests([RequestOperation(id: id, request)])
        let start = ContinuousClock.now
        if case .failure(let failure) = SeqpacketIO.send(fd, message) {
            throw Failure(description: "send: \(String(cString: strerror(failure.errno)))")
        }
        let received: SeqpacketIO.Received
        switch SeqpacketIO.receive(fd, into: buffer) {
        case .success(let message): received = message
        case .failure(let failure): throw Failure(description: "recv: \(String(cString: strerror(failure.errno)))")
        }
        let elapsed = ContinuousClock.now - start
        received.closeDescriptors()  // HELLO's simulated EPC: not needed here
        let bytes = Array(UnsafeRawBufferPointer(rebasing: buffer[0..<received.length]))
        guard case .responses(let replies) = try MessageCodec.decodeServerMessage(bytes, limits: .default), let reply = replies.first,
            replies.count == 1, reply.id == id
        else { throw Failure(description: "\(request.verb): not the one reply expected") }
        switch reply.outcome {
        case .success(let body): return (body, elapsed)
        case .failure(let error): throw Failure(description: "\(request.verb) failed: \(error)")
        }
    }
}
