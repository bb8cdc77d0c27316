import EDMMProtocol

/// What the daemon relies on when it decodes a request message: the frame and every operation
/// respect the limits, each operation that decodes re-encodes to exactly its own bytes (so no
/// field is lost or altered), each failure is attributed to its operation with an
/// operation-level code, and every error the daemon would send back decodes on the client.
func checkRequestDecoding(_ message: [UInt8], limits: ProtocolLimits) {
    let results: [Result<RequestOperation, RequestOperationFailure>]
    do {
        results = try MessageCodec.decodeRequests(message, limits: limits)
    } catch {
        checkFramingError(error, message: message, limits: limits)
        checkErrorReply(ResponseOperation(id: 0, verbCode: 0, outcome: .failure(error)))
        return
    }
    guard let frame = try? MessageCodec.parseFrame(message, limits: limits) else {
        violation("decodeRequests accepted a message whose framing parseFrame rejects")
    }
    require(frame.kind == .request, "decodeRequests accepted a message of kind \(frame.kind)")
    require(results.count == frame.operations.count, "\(frame.operations.count) operations framed, \(results.count) decoded")
    checkMessageWithinLimits(message, operations: results.count, limits: limits)

    var accepted: [RequestOperation] = []
    for (raw, result) in zip(frame.operations, results) {
        switch result {
        case .success(let op):
            require(
                op.id == raw.id && op.request.verb.rawValue == raw.verbCode && op.flags.rawValue == raw.word,
                "operation header \(raw) decoded as \(op)")
            checkInvariants(op, limits: limits)
            let original = Array(message[raw.body.lowerBound - WireSize.operationHeader..<raw.body.upperBound])
            require(MessageCodec.encode(op) == original, "\(op) re-encodes to other bytes than \(original)")
            accepted.append(op)
        case .failure(let failure):
            require(failure.id == raw.id && failure.verbCode == raw.verbCode, "failure \(failure) attributed to the wrong operation \(raw)")
            require(
                [.unknownVerb, .invalidFlags, .malformedOperation].contains(failure.error.code),
                "an operation failed with the message-level code \(failure.error.code)")
            checkErrorReply(ResponseOperation(id: failure.id, verbCode: failure.verbCode, outcome: .failure(failure.error)))
        }
    }
    guard !accepted.isEmpty else { return }

    let reencoded = MessageCodec.encodeRequests(accepted)
    if accepted.count == results.count {
        require(reencoded == message, "a message whose every operation decoded re-encodes to other bytes")
    }
    do {
        let again = try MessageCodec.decodeRequests(reencoded, limits: limits)
        require(again == accepted.map { .success($0) }, "re-encoded operations decode to \(again), not \(accepted)")
    } catch {
        violation("re-encoded operations \(accepted) fail to decode: \(error)")
    }
}

/// The daemon answers a failed operation (or a whole bad message, with id 0 and verb 0) with an
/// error reply; the client must decode it to the same code and detail. The message may be cut
/// to its 1,024-byte limit.
func checkErrorReply(_ reply: ResponseOperation) {
    guard case .failure(let sent) = reply.outcome else { return }
    let decoded: ServerMessage
    do {
        decoded = try MessageCodec.decodeServerMessage(MessageCodec.encodeResponses([reply]), limits: .default)
    } catch {
        violation("the client cannot decode the daemon's error reply \(reply): \(error)")
    }
    guard case .responses(let ops) = decoded, ops.count == 1, case .failure(let received) = ops[0].outcome else {
        violation("error reply \(reply) decoded as \(decoded)")
    }
    require(
        ops[0].id == reply.id && ops[0].verbCode == reply.verbCode && received.code == sent.code && received.detail == sent.detail,
        "error reply \(reply) decoded as \(ops[0])")
    if sent.message.utf8.count <= 1024 {
        require(received.message == sent.message, "error message \(sent.message) decoded as \(received.message)")
    }
}
