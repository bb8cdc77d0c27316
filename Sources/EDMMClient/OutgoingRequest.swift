import EDMMProtocol

/// One request to send, as a caller of the batch API describes it.
public struct OutgoingRequest: Sendable {
    public var request: Request
    /// No reply on success (FREE and RELAX only); an error still comes back, as a
    /// `ConnectionEvent.fireAndForgetFailed`.
    public var fireAndForget: Bool
    /// REGISTER: the enclave descriptor to pass with SCM_RIGHTS. HELLO: the simulated EPC (machine
    /// memfd) the client's enclaves live in, for a restarted daemon to take over (sent with the
    /// machine flag). Borrowed: the caller keeps it open until the submission has been sent.
    public var descriptor: Int32?

    public init(_ request: Request, fireAndForget: Bool = false, descriptor: Int32? = nil) {
        self.request = request
        self.fireAndForget = fireAndForget
        self.descriptor = descriptor
    }

    var expectsReply: Bool { !fireAndForget }

    func validate(_ limits: ProtocolLimits) throws(EDMMClientError) {
        if fireAndForget && request.verb != .free && request.verb != .relax {
            throw .invalidRequest("fire-and-forget is allowed on FREE and RELAX only, not \(request.verb)")
        }
        if case .register(let r) = request {
            guard descriptor != nil else { throw .invalidRequest("REGISTER needs the enclave descriptor") }
            guard r.adopted.count <= limits.maxRangesPerList else {
                throw .invalidRequest("\(r.adopted.count) adopted ranges, the daemon takes at most \(limits.maxRangesPerList) per list")
            }
            guard r.label.utf8.count <= limits.maxLabelBytes else {
                throw .invalidRequest("label of \(r.label.utf8.count) bytes, the daemon takes at most \(limits.maxLabelBytes)")
            }
        } else if descriptor != nil && request.verb != .hello {
            throw .invalidRequest("only REGISTER and HELLO carry a descriptor, not \(request.verb)")
        }
    }
}

/// Packs numbered requests into as few messages as the daemon's limits allow: operations per
/// message, bytes per message and descriptors per message. A REGISTER's `descriptorIndex` is set
/// to its descriptor's position in its own message.
enum MessagePacker {
    struct Message: Equatable {
        var bytes: [UInt8]
        var descriptors: [Int32]
        /// Indices (into the packed array) of the requests in this message.
        var members: Range<Int>
    }

    static func pack(_ requests: [(id: UInt64, OutgoingRequest)], limits: ProtocolLimits) throws(EDMMClientError) -> [Message] {
        let maxOps = max(1, min(limits.maxOperationsPerMessage, Int(UInt16.max)))
        let maxFDs = max(1, min(limits.maxDescriptorsPerMessage, 16))
        var messages: [Message] = []
        var ops: [[UInt8]] = []
        var fds: [Int32] = []
        var size = WireSize.messageHeader
        var start = 0
        func flush(upTo end: Int) {
            guard !ops.isEmpty else { return }
            messages.append(Message(bytes: MessageCodec.frame(.request, operations: ops), descriptors: fds, members: start..<end))
            ops = []
            fds = []
            size = WireSize.messageHeader
            start = end
        }
        for (index, (id, outgoing)) in requests.enumerated() {
            let needsFD = outgoing.descriptor != nil
            // A HELLO's machine descriptor must be its message's first.
            let needsFirstFD = needsFD && outgoing.request.verb == .hello
            if ops.count == maxOps || (needsFD && fds.count == maxFDs) || (needsFirstFD && !fds.isEmpty) { flush(upTo: index) }
            var encoded = encode(id, outgoing, descriptorIndex: fds.count)
            if size + encoded.count > limits.maxMessageBytes {
                flush(upTo: index)
                encoded = encode(id, outgoing, descriptorIndex: 0)
                guard WireSize.messageHeader + encoded.count <= limits.maxMessageBytes else {
                    throw .invalidRequest(
                        """
                        \(outgoing.request.verb) encodes to \(encoded.count) bytes, more than the daemon's message limit of \
                        \(limits.maxMessageBytes)
                        """
                    )
                }
            }
            ops.append(encoded)
            size += encoded.count
            if let fd = outgoing.descriptor { fds.append(fd) }
        }
        flush(upTo: requests.count)
        return messages
    }

    private static func encode(_ id: UInt64, _ outgoing: OutgoingRequest, descriptorIndex: Int) -> [UInt8] {
        var request = outgoing.request
        if case .register(var r) = request {
            r.descriptorIndex = UInt8(descriptorIndex)
            request = .register(r)
        }
        var flags: RequestFlags = outgoing.fireAndForget ? .noReply : []
        if case .hello = request, outgoing.descriptor != nil { flags.insert(.machine) }
        return MessageCodec.encode(RequestOperation(id: id, flags: flags, request))
    }
}
