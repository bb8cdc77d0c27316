/// A request operation: a client-chosen id (unique among the connection's requests in flight),
/// flags and the request.
public struct RequestOperation: Equatable, Sendable {
    public var id: UInt64
    public var flags: RequestFlags
    public var request: Request
    public init(id: UInt64, flags: RequestFlags = [], _ request: Request) {
        self.id = id
        self.flags = flags
        self.request = request
    }
}

/// A response operation: the id and verb of the request it answers, and its outcome. Errors
/// about a whole message (bad framing, version, size) come back with id 0 and verb 0.
public struct ResponseOperation: Equatable, Sendable {
    public var id: UInt64
    public var verbCode: UInt16
    public var outcome: Result<ResponseBody, WireError>
    public init(id: UInt64, verbCode: UInt16, outcome: Result<ResponseBody, WireError>) {
        self.id = id
        self.verbCode = verbCode
        self.outcome = outcome
    }
    public init(id: UInt64, verb: Verb, outcome: Result<ResponseBody, WireError>) {
        self.init(id: id, verbCode: verb.rawValue, outcome: outcome)
    }
    public var verb: Verb? { Verb(rawValue: verbCode) }
}

/// A daemon-initiated notice; `sequence` increases by one per push on a connection.
public struct PushOperation: Equatable, Sendable {
    public var sequence: UInt64
    public var push: Push
    public init(sequence: UInt64, _ push: Push) {
        self.sequence = sequence
        self.push = push
    }
}

/// A request operation that could not be decoded, with what is known of it so that the daemon
/// can answer it precisely and carry on with the message's other operations.
public struct RequestOperationFailure: Error, Equatable, Sendable {
    public var id: UInt64
    public var verbCode: UInt16
    public var error: WireError
}

/// What a client receives: replies or pushes.
public enum ServerMessage: Equatable, Sendable {
    case responses([ResponseOperation])
    case pushes([PushOperation])
}

/// Encoding and decoding of whole messages (one SOCK_SEQPACKET record each). See docs/protocol.md.
public enum MessageCodec {
    // MARK: Encoding

    /// Encodes one operation (header + body) so a sender can pack several into one message.
    public static func encode(_ op: RequestOperation) -> [UInt8] {
        operation(verb: op.request.verb.rawValue, word: op.flags.rawValue, id: op.id) { op.request.encode(&$0) }
    }

    public static func encode(_ op: ResponseOperation) -> [UInt8] {
        switch op.outcome {
        case .success(let body):
            operation(verb: op.verbCode, word: 0, id: op.id) { body.encode(&$0) }
        case .failure(let error):
            operation(verb: op.verbCode, word: error.code.rawValue, id: op.id) { error.encode(&$0) }
        }
    }

    public static func encode(_ op: PushOperation) -> [UInt8] {
        operation(verb: op.push.verb.rawValue, word: 0, id: op.sequence) { op.push.encode(&$0) }
    }

    /// Frames already-encoded operations into one message.
    public static func frame(_ kind: MessageKind, operations: [[UInt8]]) -> [UInt8] {
        var w = WireWriter(capacity: WireSize.messageHeader + operations.reduce(0) { $0 + $1.count })
        w.u32(messageMagic)
        w.u16(ProtocolVersion.current)
        w.u16(kind.rawValue)
        w.u32(0)
        w.u16(UInt16(truncatingIfNeeded: operations.count))
        w.u16(0)
        for op in operations { w.raw(op) }
        w.patchU32(at: 8, UInt32(truncatingIfNeeded: w.bytes.count))
        return w.bytes
    }

    public static func encodeRequests(_ ops: [RequestOperation]) -> [UInt8] { frame(.request, operations: ops.map(encode)) }
    public static func encodeResponses(_ ops: [ResponseOperation]) -> [UInt8] { frame(.response, operations: ops.map(encode)) }
    public static func encodePushes(_ ops: [PushOperation]) -> [UInt8] { frame(.push, operations: ops.map(encode)) }

    /// Packs encoded operations greedily into as few messages as the size and count limits allow.
    /// An operation that alone exceeds the size limit is returned in `oversized` for the caller
    /// to answer with an error instead.
    public static func pack(_ operations: [[UInt8]], kind: MessageKind, limits: ProtocolLimits) -> (messages: [[UInt8]], oversized: [Int]) {
        var messages: [[UInt8]] = []
        var oversized: [Int] = []
        var current: [[UInt8]] = []
        var size = WireSize.messageHeader
        for (index, op) in operations.enumerated() {
            if WireSize.messageHeader + op.count > limits.maxMessageBytes {
                oversized.append(index)
                continue
            }
            if size + op.count > limits.maxMessageBytes || current.count == limits.maxOperationsPerMessage {
                messages.append(frame(kind, operations: current))
                current = []
                size = WireSize.messageHeader
            }
            current.append(op)
            size += op.count
        }
        if !current.isEmpty { messages.append(frame(kind, operations: current)) }
        return (messages, oversized)
    }

    private static func operation(verb: UInt16, word: UInt16, id: UInt64, body: (inout WireWriter) -> Void) -> [UInt8] {
        var w = WireWriter()
        w.u16(verb)
        w.u16(word)
        w.u32(0)
        w.u64(id)
        body(&w)
        w.patchU32(at: 4, UInt32(truncatingIfNeeded: w.bytes.count - WireSize.operationHeader))
        return w.bytes
    }

    // MARK: Decoding

    /// One operation as framed: its header fields and where its body lies in the message.
    public struct RawOperation: Equatable, Sendable {
        public var verbCode: UInt16
        public var word: UInt16
        public var id: UInt64
        public var body: Range<Int>
    }

    /// Checks the framing of a message and splits it into operations. Every failure is a
    /// message-level `WireError` (malformed-message, unsupported-version, message-too-large,
    /// too-many-operations) that the receiver answers with id 0.
    public static func parseFrame(_ bytes: [UInt8], limits: ProtocolLimits) throws(WireError) -> (
        kind: MessageKind, operations: [RawOperation]
    ) {
        guard bytes.count <= limits.maxMessageBytes else {
            throw WireError(
                .messageTooLarge, "message of \(bytes.count) bytes exceeds the limit of \(limits.maxMessageBytes)",
                detail: .limit(limit: UInt64(limits.maxMessageBytes), actual: UInt64(bytes.count)))
        }
        var r = WireReader(bytes)
        do {
            let magic = try r.u32("magic")
            guard magic == messageMagic else {
                throw WireError(
                    .malformedMessage, "bad magic 0x\(String(magic, radix: 16)), expected 0x\(String(messageMagic, radix: 16)) (\"EDMM\")")
            }
            let version = try r.u16("version")
            guard ProtocolVersion.supported.contains(version) else {
                throw WireError(
                    .unsupportedVersion,
                    """
                    protocol version \(version) is not supported (this daemon speaks \
                    \(ProtocolVersion.supported.lowerBound)...\(ProtocolVersion.supported.upperBound))
                    """
                )
            }
            let kindCode = try r.u16("kind")
            guard let kind = MessageKind(rawValue: kindCode) else {
                throw WireError(.malformedMessage, "unknown message kind \(kindCode)")
            }
            let length = try r.u32("length")
            guard length == bytes.count else {
                throw WireError(.malformedMessage, "header says \(length) bytes, the packet has \(bytes.count)")
            }
            let count = Int(try r.u16("operation count"))
            guard count <= limits.maxOperationsPerMessage else {
                throw WireError(
                    .tooManyOperations, "\(count) operations in one message, limit \(limits.maxOperationsPerMessage)",
                    detail: .limit(limit: UInt64(limits.maxOperationsPerMessage), actual: UInt64(count)))
            }
            guard count > 0 else { throw WireError(.malformedMessage, "message has no operations") }
            let flags = try r.u16("flags")
            guard flags == 0 else { throw WireError(.malformedMessage, "reserved message flags 0x\(String(flags, radix: 16)) must be 0") }
            var ops: [RawOperation] = []
            ops.reserveCapacity(count)
            for index in 0..<count {
                let verb = try r.u16("op[\(index)].verb")
                let word = try r.u16("op[\(index)].flags")
                let bodyLength = Int(try r.u32("op[\(index)].length"))
                let id = try r.u64("op[\(index)].id")
                guard bodyLength <= r.remaining else {
                    throw WireError(.malformedMessage, "operation \(index) declares a \(bodyLength)-byte body, \(r.remaining) bytes left")
                }
                ops.append(RawOperation(verbCode: verb, word: word, id: id, body: r.position..<r.position + bodyLength))
                try r.skip(bodyLength, "op[\(index)].body")
            }
            guard r.isAtEnd else { throw WireError(.malformedMessage, "\(r.remaining) bytes after the last operation") }
            return (kind, ops)
        } catch let error as DecodeError {
            throw WireError(.malformedMessage, "truncated message: \(error)")
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.internalError, "\(error)")
        }
    }

    /// Decodes a request message (daemon side). Framing errors throw; each operation decodes on
    /// its own, so one unknown verb or bad body fails only that operation.
    public static func decodeRequests(_ bytes: [UInt8], limits: ProtocolLimits) throws(WireError) -> [Result<
        RequestOperation, RequestOperationFailure
    >] {
        let (kind, ops) = try parseFrame(bytes, limits: limits)
        guard kind == .request else { throw WireError(.malformedMessage, "expected a request message, got kind \(kind.rawValue)") }
        return ops.map { op in
            guard let verb = Verb(rawValue: op.verbCode) else {
                return .failure(
                    RequestOperationFailure(id: op.id, verbCode: op.verbCode, error: WireError(.unknownVerb, "unknown verb \(op.verbCode)"))
                )
            }
            let flags = RequestFlags(rawValue: op.word)
            guard RequestFlags.known.isSuperset(of: flags) else {
                return .failure(
                    RequestOperationFailure(
                        id: op.id, verbCode: op.verbCode,
                        error: WireError(.invalidFlags, "unknown flag bits 0x\(String(op.word, radix: 16)) on \(verb)")))
            }
            if flags.contains(.noReply) && verb != .free && verb != .relax {
                return .failure(
                    RequestOperationFailure(
                        id: op.id, verbCode: op.verbCode,
                        error: WireError(.invalidFlags, "no-reply is only allowed on FREE and RELAX, not \(verb)")))
            }
            if flags.contains(.machine) && verb != .hello {
                return .failure(
                    RequestOperationFailure(
                        id: op.id, verbCode: op.verbCode,
                        error: WireError(.invalidFlags, "the machine flag is only allowed on HELLO, not \(verb)")))
            }
            if !flags.isDisjoint(with: .registration) && verb != .register {
                return .failure(
                    RequestOperationFailure(
                        id: op.id, verbCode: op.verbCode,
                        error: WireError(
                            .invalidFlags, "implicit-commit, kernel-errors and fresh-only are only allowed on REGISTER, not \(verb)")))
            }
            var r = WireReader(bytes, from: op.body.lowerBound, to: op.body.upperBound)
            do {
                return .success(RequestOperation(id: op.id, flags: flags, try Request.decode(verb: verb, &r, limits: limits)))
            } catch {
                return .failure(
                    RequestOperationFailure(id: op.id, verbCode: op.verbCode, error: WireError(.malformedOperation, "\(verb): \(error)")))
            }
        }
    }

    /// Decodes a message from the daemon (client side). A client treats any failure as a broken
    /// connection, so this is strict: every operation must decode.
    public static func decodeServerMessage(_ bytes: [UInt8], limits: ProtocolLimits) throws(WireError) -> ServerMessage {
        let (kind, ops) = try parseFrame(bytes, limits: limits)
        do {
            switch kind {
            case .request:
                throw WireError(.malformedMessage, "a daemon does not send requests")
            case .response:
                return .responses(
                    try ops.map { (op: RawOperation) throws -> ResponseOperation in
                        var r = WireReader(bytes, from: op.body.lowerBound, to: op.body.upperBound)
                        if op.word != 0 {
                            // An unknown code is a newer daemon's error, not a broken message (Versioning).
                            let error = try WireError.decode(code: WireErrorCode(rawValue: op.word), &r)
                            try r.expectEnd("error body")
                            return ResponseOperation(id: op.id, verbCode: op.verbCode, outcome: .failure(error))
                        }
                        guard let verb = Verb(rawValue: op.verbCode) else {
                            throw WireError(.malformedMessage, "reply with unknown verb \(op.verbCode)")
                        }
                        return ResponseOperation(
                            id: op.id, verb: verb, outcome: .success(try ResponseBody.decode(verb: verb, &r, limits: limits)))
                    })
            case .push:
                return .pushes(
                    try ops.map { (op: RawOperation) throws -> PushOperation in
                        guard let verb = PushVerb(rawValue: op.verbCode) else {
                            throw WireError(.malformedMessage, "unknown push \(op.verbCode)")
                        }
                        guard op.word == 0 else {
                            throw WireError(.malformedMessage, "push \(verb) has word 0x\(String(op.word, radix: 16)), must be 0")
                        }
                        var r = WireReader(bytes, from: op.body.lowerBound, to: op.body.upperBound)
                        return PushOperation(sequence: op.id, try Push.decode(verb: verb, &r, limits: limits))
                    })
            }
        } catch let error as DecodeError {
            throw WireError(.malformedMessage, "\(error)")
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.internalError, "\(error)")
        }
    }
}
