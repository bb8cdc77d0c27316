import EDMMProtocol

/// What a client relies on when it decodes a message from the daemon: it respects the limits
/// the client announced, every reply body matches its verb, and the decoded value re-encodes to
/// exactly the received bytes. Decoding is deterministic, so byte equality is the round trip
/// (and it also holds for a NaN `requestsPerSecond`, which `==` on decoded values would not).
func checkServerMessageDecoding(_ message: [UInt8], limits: ProtocolLimits) {
    let decoded: ServerMessage
    do {
        decoded = try MessageCodec.decodeServerMessage(message, limits: limits)
    } catch {
        checkFramingError(error, message: message, limits: limits)
        return
    }
    let reencoded: [UInt8]
    switch decoded {
    case .responses(let ops):
        checkMessageWithinLimits(message, operations: ops.count, limits: limits)
        for op in ops { checkInvariants(op, limits: limits) }
        reencoded = MessageCodec.encodeResponses(ops)
    case .pushes(let ops):
        checkMessageWithinLimits(message, operations: ops.count, limits: limits)
        for op in ops { checkInvariants(op, limits: limits) }
        reencoded = MessageCodec.encodePushes(ops)
    }
    require(reencoded == message, "\(decoded) re-encodes to other bytes")
}
