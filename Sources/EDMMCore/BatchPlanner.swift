/// One ioctl of a flush: a contiguous range of one operation and the requests whose pages it
/// covers, in page order.
public struct PlannedIoctl: Hashable, Sendable, CustomStringConvertible {
    public struct Part: Hashable, Sendable {
        public var request: RequestID
        public var range: PageRange

        public init(request: RequestID, range: PageRange) {
            self.request = request
            self.range = range
        }
    }

    public var operation: QueuedOperation
    public var range: PageRange
    public var parts: [Part]

    public init(operation: QueuedOperation, range: PageRange, parts: [Part]) {
        self.operation = operation
        self.range = range
        self.parts = parts
    }

    public var description: String {
        "\(operation) \(range) for " + parts.map { "\($0.request)" }.joined(separator: ", ")
    }
}

/// Requests the planner cannot plan. The ledger never queues two requests on one page, so these
/// mean a bug in the caller, reported precisely rather than trapped.
public enum PlanError: Error, Hashable, Sendable, CustomStringConvertible {
    case duplicateRequestID(RequestID)
    case overlappingRequests(RequestID, RequestID, page: UInt64)

    public var description: String {
        switch self {
        case .duplicateRequestID(let id): "\(id) is queued twice"
        case .overlappingRequests(let first, let second, let page): "\(first) and \(second) both cover page \(page)"
        }
    }
}

/// Turns one enclave's queued requests (from any number of clients) into the fewest ioctls.
///
/// Requests of one window are disjoint: the ledger refuses to queue work on a page that already
/// has work queued (`LedgerError.pendingWork`), so duplicates and overlaps are rejected when they
/// arrive, never coalesced; `plan` rechecks and throws `PlanError` if handed any.
///
/// Batched plans group requests by operation and merge requests whose ranges touch into one
/// maximal range: EMODT(TRIM) and EMODT(TCS) never together, EMODPR only with equal permissions.
/// The order is deterministic: REMOVE_PAGES first (it frees EPC), then EMODT(TRIM), EMODPR by
/// permission bits, EMODT(TCS); by first page within each. Unbatched plans (the `--no-batch`
/// baseline) issue one ioctl per request in arrival order.
public struct BatchPlanner: Hashable, Sendable {
    public var batching: Bool

    public init(batching: Bool = true) {
        self.batching = batching
    }

    public func plan(_ requests: [QueuedRequest]) throws(PlanError) -> [PlannedIoctl] {
        var ids = Set<RequestID>()
        for request in requests where !ids.insert(request.id).inserted { throw .duplicateRequestID(request.id) }
        let byPage = requests.sorted { ($0.range.first, $0.id) < ($1.range.first, $1.id) }
        for (lower, upper) in zip(byPage, byPage.dropFirst()) where lower.range.end > upper.range.first {
            throw .overlappingRequests(lower.id, upper.id, page: upper.range.first)
        }
        guard batching else { return requests.map(Self.single) }

        let ordered = byPage.sorted {
            (Self.rank($0.operation), $0.range.first) < (Self.rank($1.operation), $1.range.first)
        }
        var plan: [PlannedIoctl] = []
        for request in ordered {
            let part = PlannedIoctl.Part(request: request.id, range: request.range)
            if let last = plan.last, last.operation == request.operation, last.range.end == request.range.first {
                plan[plan.count - 1].range = PageRange(first: last.range.first, end: request.range.end)
                plan[plan.count - 1].parts.append(part)
            } else {
                plan.append(Self.single(request))
            }
        }
        return plan
    }

    private static func single(_ request: QueuedRequest) -> PlannedIoctl {
        PlannedIoctl(
            operation: request.operation, range: request.range,
            parts: [PlannedIoctl.Part(request: request.id, range: request.range)])
    }

    private static func rank(_ operation: QueuedOperation) -> Int {
        switch operation {
        case .remove: 0
        case .trim: 1
        case .restrict(let permissions): 2 + Int(permissions.rawValue)
        case .makeTCS: 10
        }
    }
}
