#if canImport(Glibc)
    import EDMMCore
    import EDMMSystem
    import Glibc
#endif

/// Retries `IoctlRunner` made, by the errno that caused them.
public struct RetryCounts: Hashable, Sendable {
    public var ebusy = 0
    public var eagain = 0
    public var eintr = 0

    public init(ebusy: Int = 0, eagain: Int = 0, eintr: Int = 0) {
        self.ebusy = ebusy
        self.eagain = eagain
        self.eintr = eintr
    }

    public var total: Int { ebusy + eagain + eintr }

    /// The errnos `IoctlRunner` retries: another ioctl on the enclave (EBUSY), a page owned by
    /// the reclaimer or no free EPC to reload it (EAGAIN), a signal (EINTR).
    public static func isRetried(_ errno: Int32) -> Bool { errno == EBUSY || errno == EAGAIN || errno == EINTR }

    mutating func record(_ errno: Int32) {
        switch errno {
        case EBUSY: ebusy += 1
        case EAGAIN: eagain += 1
        default: eintr += 1
        }
    }
}

/// The result of one logical SGX2 operation run by `IoctlRunner`, possibly over several calls.
public struct IoctlRunResult: Hashable, Sendable, CustomStringConvertible {
    /// Why the runner stopped.
    public enum Stop: Hashable, Sendable {
        /// The whole range is done (`errno` is 0).
        case completed
        /// A call failed with an errno that is not retried.
        case failed
        /// More than `maxRetriesWithoutProgress` calls in a row failed without completing a page.
        case retriesExhausted
        /// The next pause would have exceeded `maxTotalWait`.
        case waitExhausted
        /// The device reported a `count` the kernel never produces (past the range, not
        /// page-aligned, or short of the range on success); nothing of that call is counted,
        /// and `errno` is EPROTO if the call claimed success.
        case invalidCount(UInt64)
    }

    public var stop: Stop
    /// The last call's errno; 0 exactly when the whole range is done (`stop == .completed`).
    public var errno: Int32
    /// Bytes completed from the start of the range; the page at `offset + bytesDone` is the one
    /// that failed when `errno` is not 0.
    public var bytesDone: UInt64
    /// The last call's `result` (the SGX error code of EMODT/EMODPR when it failed with one);
    /// nil for REMOVE_PAGES, whose struct has no `result`.
    public var result: UInt64?
    /// ioctl calls made, retries included.
    public var ioctlCalls: Int
    public var retries: RetryCounts
    /// Sum of the backoff pauses requested.
    public var totalBackoff: Duration

    public init(
        stop: Stop, errno: Int32, bytesDone: UInt64, result: UInt64?, ioctlCalls: Int, retries: RetryCounts,
        totalBackoff: Duration
    ) {
        self.stop = stop
        self.errno = errno
        self.bytesDone = bytesDone
        self.result = result
        self.ioctlCalls = ioctlCalls
        self.retries = retries
        self.totalBackoff = totalBackoff
    }

    public var isComplete: Bool { stop == .completed }

    /// What the run amounts to for the model: errno, bytes done and the SGX result (0 without
    /// one), which `PlannedIoctl.attribute` spreads over the requests it served.
    public var reported: IoctlOutcome { IoctlOutcome(errno: errno, count: bytesDone, result: result ?? 0) }

    public var description: String {
        let outcome = isComplete ? "done" : "\(ErrnoName.of(errno)) (\(stop))"
        let result = result.map { ", result \($0)" } ?? ""
        return "\(outcome) after \(bytesDone) bytes\(result), \(ioctlCalls) calls, \(retries.total) retries"
    }
}
