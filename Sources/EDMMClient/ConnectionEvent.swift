import EDMMProtocol

/// What a connection reports outside of replies. Delivered on the connection's reader thread,
/// in the order the daemon sent them: a handler must return quickly and must not wait for a
/// reply of the same connection (hand the work to a task or queue instead).
public enum ConnectionEvent: Sendable {
    /// RECLAIM_NOTICE or SHUTDOWN_NOTICE.
    case push(PushOperation)
    /// A fire-and-forget request (FREE, RELAX) failed; `id` is the one its submission reported.
    case fireAndForgetFailed(id: UInt64, verbCode: UInt16, error: WireError)
    /// A successful reply to a request that is not in flight (a daemon bug; the reply is dropped).
    case unexpectedReply(id: UInt64, verbCode: UInt16)
    /// The connection is finished; every outstanding request failed with this error.
    case closed(EDMMClientError)
}
