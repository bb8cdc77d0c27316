/// How `IoctlRunner` retries EBUSY, EAGAIN and EINTR: an exponential backoff between calls,
/// reset whenever a call completes at least one page, and two bounds after which it gives up.
public struct RetryPolicy: Hashable, Sendable {
    /// The pause before a retry that follows progress (and before the first retry).
    public let initialBackoff: Duration
    /// Doubling stops here.
    public let maxBackoff: Duration
    /// How many calls in a row may end in EBUSY/EAGAIN/EINTR without completing a page and still
    /// be retried. A call that completes pages is always retried and resets the count, so a long
    /// range that keeps advancing is never cut off.
    public let maxRetriesWithoutProgress: Int
    /// Upper bound on the sum of the backoff pauses of one operation (requested durations; the
    /// ioctls' own time is not counted).
    public let maxTotalWait: Duration

    /// 1 µs doubling to 1 ms, at most 1000 retries in a row without progress and 1 s of pauses in total.
    public static let `default` = RetryPolicy(
        checkedInitialBackoff: .microseconds(1), maxBackoff: .milliseconds(1),
        maxRetriesWithoutProgress: 1000, maxTotalWait: .seconds(1))

    public enum InvalidValue: Error, Hashable, CustomStringConvertible {
        case negativeDuration(field: String, Duration)
        case backoffRangeInverted(initial: Duration, max: Duration)
        case negativeRetries(Int)

        public var description: String {
            switch self {
            case .negativeDuration(let field, let value): "retry policy: \(field) must not be negative (got \(value))"
            case .backoffRangeInverted(let initial, let max):
                "retry policy: initial backoff \(initial) exceeds the maximum backoff \(max)"
            case .negativeRetries(let value): "retry policy: retries without progress must be >= 0 (got \(value))"
            }
        }
    }

    public init(
        initialBackoff: Duration, maxBackoff: Duration, maxRetriesWithoutProgress: Int, maxTotalWait: Duration
    ) throws(InvalidValue) {
        for (field, value) in [
            ("initial backoff", initialBackoff), ("max backoff", maxBackoff),
            ("max total wait", maxTotalWait),
        ] where value < .zero {
            throw .negativeDuration(field: field, value)
        }
        guard initialBackoff <= maxBackoff else {
            throw .backoffRangeInverted(initial: initialBackoff, max: maxBackoff)
        }
        guard maxRetriesWithoutProgress >= 0 else { throw .negativeRetries(maxRetriesWithoutProgress) }
        self.init(
            checkedInitialBackoff: initialBackoff, maxBackoff: maxBackoff,
            maxRetriesWithoutProgress: maxRetriesWithoutProgress, maxTotalWait: maxTotalWait)
    }

    private init(
        checkedInitialBackoff: Duration, maxBackoff: Duration, maxRetriesWithoutProgress: Int, maxTotalWait: Duration
    ) {
        self.initialBackoff = checkedInitialBackoff
        self.maxBackoff = maxBackoff
        self.maxRetriesWithoutProgress = maxRetriesWithoutProgress
        self.maxTotalWait = maxTotalWait
    }

    /// The pause after `current`: doubled, capped at `maxBackoff`.
    func backoff(after current: Duration) -> Duration {
        current >= maxBackoff / 2 ? maxBackoff : current * 2
    }
}
