import EDMMProtocol

/// Requests that have been sent; their replies arrive independently of each other.
public struct Submission: Sendable {
    /// The id of each request, in submission order.
    public let ids: [UInt64]
    /// Messages it took (one enclave exit each for a runtime that sends from inside an OCALL).
    public let messages: Int
    /// When sending began (for round-trip latencies with `Reply.receivedAt`).
    public let sentAt: ContinuousClock.Instant
    /// nil for fire-and-forget requests.
    let slots: [ReplySlot?]

    /// Waits for every reply, in submission order. A fire-and-forget request yields `nil`.
    /// Call once.
    public func replies() async -> [Result<Reply?, EDMMClientError>] { await replies(slots.indices) }

    /// Waits for the replies of the requests at `positions` (submission order). Call at most
    /// once per request.
    func replies(_ positions: Range<Int>) async -> [Result<Reply?, EDMMClientError>] {
        var results: [Result<Reply?, EDMMClientError>] = []
        results.reserveCapacity(positions.count)
        for slot in slots[positions] {
            if let slot {
                results.append((await slot.value()).map { $0 })
            } else {
                results.append(.success(nil))
            }
        }
        return results
    }
}
