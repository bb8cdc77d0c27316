import EDMMProtocol

/// A rejected message gets a message-level code; the limit errors carry the right numbers.
func checkFramingError(_ error: WireError, message: [UInt8], limits: ProtocolLimits) {
    switch error.code {
    case .malformedMessage, .unsupportedVersion:
        break
    case .messageTooLarge:
        require(message.count > limits.maxMessageBytes, "message-too-large for \(message.count) bytes, limit \(limits.maxMessageBytes)")
        require(
            error.detail == .limit(limit: UInt64(limits.maxMessageBytes), actual: UInt64(message.count)),
            "message-too-large with detail \(error.detail)")
    case .tooManyOperations:
        guard case .limit(let limit, let actual) = error.detail else { violation("too-many-operations with detail \(error.detail)") }
        require(
            limit == UInt64(limits.maxOperationsPerMessage) && actual > limit, "too-many-operations with limit \(limit), actual \(actual)")
    default:
        violation("a message was rejected with \(error.code): \(error.message)")
    }
}

/// An accepted message is within the size limit and has 1 ... limit operations.
func checkMessageWithinLimits(_ message: [UInt8], operations: Int, limits: ProtocolLimits) {
    require(message.count <= limits.maxMessageBytes, "accepted \(message.count) bytes, limit \(limits.maxMessageBytes)")
    require(
        operations >= 1 && operations <= limits.maxOperationsPerMessage,
        "accepted \(operations) operations, limit \(limits.maxOperationsPerMessage)")
}
