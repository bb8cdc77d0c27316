import EDMMProtocol
import Glibc
import Synchronization

/// A successful reply: its body, and the descriptors that came with its message (only the
/// HELLO reply of a simulated daemon carries one; the receiver owns and closes them).
public struct Reply: Sendable {
    public var body: ResponseBody
    public var descriptors: [Int32]
    /// When the reader thread received it.
    public var receivedAt: ContinuousClock.Instant
}

/// A one-shot slot for the reply to one request: filled by the reader thread, awaited by the
/// caller, in either order.
final class ReplySlot: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Result<Reply, EDMMClientError>, Never>)
        case filled(Result<Reply, EDMMClientError>)
        case taken
    }

    private let state = Mutex(State.empty)

    /// Delivers the outcome. A second delivery is ignored (the first one wins).
    func fill(_ result: Result<Reply, EDMMClientError>) {
        let waiter: CheckedContinuation<Result<Reply, EDMMClientError>, Never>? = state.withLock { s in
            switch s {
            case .empty:
                s = .filled(result)
                return nil
            case .waiting(let continuation):
                s = .taken
                return continuation
            case .filled, .taken:
                return nil
            }
        }
        waiter?.resume(returning: result)
    }

    /// Waits for the outcome. Call at most once.
    func value() async -> Result<Reply, EDMMClientError> {
        await withCheckedContinuation { continuation in
            let ready: Result<Reply, EDMMClientError>? = state.withLock { s in
                switch s {
                case .empty:
                    s = .waiting(continuation)
                    return nil
                case .filled(let result):
                    s = .taken
                    return result
                case .waiting, .taken:
                    return .failure(.protocolViolation("a reply was awaited twice (client bug)"))
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
