/// What one SGX2 ioctl returned, after the device layer's retries.
public struct IoctlOutcome: Hashable, Sendable {
    /// 0 on success, else the errno of the failed call.
    public var errno: Int32
    /// Bytes processed before the failing page (the whole length on success).
    public var count: UInt64
    /// The ENCLS error code when the kernel set one (MODIFY_TYPES, RESTRICT_PERMISSIONS), else 0.
    public var result: UInt64

    public init(errno: Int32, count: UInt64, result: UInt64 = 0) {
        self.errno = errno
        self.count = count
        self.result = result
    }

    public static func success(_ range: PageRange) -> IoctlOutcome {
        IoctlOutcome(errno: 0, count: range.byteLength)
    }
}

/// The failure of one request, with `count` relative to the request itself.
public struct RequestFailure: Error, Hashable, Sendable, CustomStringConvertible {
    public var request: RequestID
    public var operation: QueuedOperation
    public var errno: Int32
    public var result: UInt64
    /// Bytes of this request that were processed before the failing page.
    public var count: UInt64

    public init(request: RequestID, operation: QueuedOperation, errno: Int32, result: UInt64, count: UInt64) {
        self.request = request
        self.operation = operation
        self.errno = errno
        self.result = result
        self.count = count
    }

    public var description: String {
        "\(request): \(operation) failed with errno \(errno), result \(result), after \(count) bytes"
    }
}

/// An outcome that contradicts the ioctl's contract (a device-layer bug).
public struct InconsistentOutcome: Error, Hashable, Sendable, CustomStringConvertible {
    public var ioctl: PlannedIoctl
    public var outcome: IoctlOutcome
    public var description: String {
        "\(ioctl.operation) of \(ioctl.range.byteLength) bytes returned errno \(outcome.errno) with count \(outcome.count)"
    }
}

/// How one ioctl's outcome falls on the requests it served.
public struct Attribution: Hashable, Sendable {
    /// Requests whose pages all completed.
    public var succeeded: [RequestID] = []
    /// The request holding the failing page.
    public var failed: RequestFailure?
    /// Requests the ioctl never reached: still queued, to be planned again, never failed for
    /// another request's page.
    public var unreached: [QueuedRequest] = []
    /// Pages the ioctl processed.
    public var completed: PageRange?
    /// Pages of the failed request from the failing page on, back to their previous state.
    public var reverted: PageRange?
}

extension PlannedIoctl {
    /// Attributes `outcome` to the parts: everything before `count` completed, the part holding
    /// the page at `count` failed from that page on, later parts are unreached.
    public func attribute(_ outcome: IoctlOutcome) throws(InconsistentOutcome) -> Attribution {
        let length = range.byteLength
        let consistent =
            outcome.errno == 0
            ? outcome.count == length : outcome.count < length && outcome.count % Page.size == 0
        guard consistent else { throw InconsistentOutcome(ioctl: self, outcome: outcome) }

        var attribution = Attribution()
        let donePages = outcome.count >> Page.shift
        if donePages > 0 { attribution.completed = PageRange(first: range.first, count: donePages) }
        let failingPage = range.first + donePages
        for part in parts {
            if outcome.errno == 0 || part.range.end <= failingPage {
                attribution.succeeded.append(part.request)
            } else if part.range.contains(failingPage) {
                attribution.failed = RequestFailure(
                    request: part.request, operation: operation, errno: outcome.errno, result: outcome.result,
                    count: (failingPage - part.range.first) << Page.shift)
                attribution.reverted = PageRange(first: failingPage, end: part.range.end)
            } else {
                attribution.unreached.append(QueuedRequest(id: part.request, operation: operation, range: part.range))
            }
        }
        return attribution
    }
}

extension EnclaveLedger {
    /// Records an attributed ioctl: completed pages advance, the failed request's remaining pages
    /// go back to where they were, unreached pages stay queued. All or nothing.
    public mutating func apply(_ attribution: Attribution, of ioctl: PlannedIoctl) throws(LedgerError) {
        let operation = ioctl.operation
        var steps: [Step] = []
        if let completed = attribution.completed {
            steps += try plan(.complete(operation), completed, Self.completionRule(operation))
        }
        if let reverted = attribution.reverted {
            steps += try plan(.revert(operation), reverted, Self.revertRule(operation))
        }
        commit(steps)
    }
}
