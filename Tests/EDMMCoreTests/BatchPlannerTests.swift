import EDMMCore
import Testing

func request(_ id: UInt64, _ operation: QueuedOperation, _ first: UInt64, _ count: UInt64) -> QueuedRequest {
    QueuedRequest(id: RequestID(id), operation: operation, range: pages(first, count))
}

func part(_ id: UInt64, _ first: UInt64, _ count: UInt64) -> PlannedIoctl.Part {
    PlannedIoctl.Part(request: RequestID(id), range: pages(first, count))
}

@Suite struct BatchPlanning {
    let planner = BatchPlanner()

    @Test func adjacentTrimsFromDifferentClientsBecomeOneIoctl() throws {
        let plan = try planner.plan([request(2, .trim, 8, 4), request(1, .trim, 0, 8), request(3, .trim, 12, 1)])
        #expect(plan.count == 1)
        #expect(plan[0].range == pages(0, 13))
        #expect(plan[0].parts == [part(1, 0, 8), part(2, 8, 4), part(3, 12, 1)])
    }

    @Test func trimsSeparatedByAGapStaySeparate() throws {
        let plan = try planner.plan([request(1, .trim, 0, 4), request(2, .trim, 5, 4)])
        #expect(plan.map(\.range) == [pages(0, 4), pages(5, 4)])
    }

    @Test func restrictionsMergeOnlyWithEqualPermissions() throws {
        let plan = try planner.plan([
            request(1, .restrict(.read), 0, 2), request(2, .restrict(.rx), 2, 2), request(3, .restrict(.read), 4, 2),
            request(4, .restrict(.read), 6, 2),
        ])
        #expect(plan.map(\.operation) == [.restrict(.read), .restrict(.read), .restrict(.rx)])
        #expect(plan.map(\.range) == [pages(0, 2), pages(4, 4), pages(2, 2)])
    }

    @Test func trimAndTCSConversionAreNeverMerged() throws {
        let plan = try planner.plan([request(1, .trim, 0, 1), request(2, .makeTCS, 1, 1), request(3, .makeTCS, 2, 1)])
        #expect(plan.map(\.operation) == [.trim, .makeTCS])
        #expect(plan.map(\.range) == [pages(0, 1), pages(1, 2)])
    }

    @Test func theOrderIsRemoveTrimRestrictTCSThenByPage() throws {
        let plan = try planner.plan([
            request(1, .makeTCS, 0, 1), request(2, .restrict(.read), 10, 1), request(3, .trim, 30, 1),
            request(4, .remove, 40, 1), request(5, .trim, 20, 1),
        ])
        #expect(plan.map(\.operation) == [.remove, .trim, .trim, .restrict(.read), .makeTCS])
        #expect(plan.map(\.range.first) == [40, 20, 30, 10, 0])
    }

    @Test func unbatchedPlansIssueOneIoctlPerRequestInArrivalOrder() throws {
        let requests = [request(7, .trim, 8, 4), request(3, .trim, 0, 8), request(5, .remove, 12, 1)]
        let plan = try BatchPlanner(batching: false).plan(requests)
        #expect(plan.map { $0.parts.map(\.request) } == [[RequestID(7)], [RequestID(3)], [RequestID(5)]])
        #expect(plan.map(\.range) == requests.map(\.range))
    }

    @Test func overlappingRequestsAreRejectedNamingBoth() {
        #expect(throws: PlanError.overlappingRequests(RequestID(1), RequestID(2), page: 3)) {
            try planner.plan([request(1, .trim, 0, 4), request(2, .remove, 3, 4)])
        }
        #expect(throws: PlanError.duplicateRequestID(RequestID(1))) {
            try planner.plan([request(1, .trim, 0, 4), request(1, .trim, 8, 4)])
        }
    }
}

@Suite struct OutcomeAttribution {
    let ioctl = PlannedIoctl(
        operation: .trim, range: pages(0, 12), parts: [part(1, 0, 4), part(2, 4, 4), part(3, 8, 4)])

    @Test func aSuccessfulIoctlSucceedsEveryRequest() throws {
        let attribution = try ioctl.attribute(.success(ioctl.range))
        #expect(attribution.succeeded == [RequestID(1), RequestID(2), RequestID(3)])
        #expect(attribution.failed == nil)
        #expect(attribution.completed == pages(0, 12))
    }

    @Test func aFailureFailsOnlyTheRequestHoldingTheFailingPageAndLeavesLaterOnesForReplanning() throws {
        // The kernel stopped at page 6 (count = 6 pages) with EFAULT, SGX_PAGE_NOT_MODIFIABLE.
        let attribution = try ioctl.attribute(IoctlOutcome(errno: 14, count: 6 * 4096, result: 20))
        #expect(attribution.succeeded == [RequestID(1)])
        #expect(
            attribution.failed
                == RequestFailure(request: RequestID(2), operation: .trim, errno: 14, result: 20, count: 2 * 4096))
        #expect(attribution.unreached == [request(3, .trim, 8, 4)])
        #expect(attribution.completed == pages(0, 6))
        #expect(attribution.reverted == pages(6, 2))
    }

    @Test func aFailureOnARequestsFirstPageReportsACountOfZero() throws {
        let attribution = try ioctl.attribute(IoctlOutcome(errno: 1, count: 4 * 4096))
        #expect(attribution.succeeded == [RequestID(1)])
        #expect(attribution.failed?.request == RequestID(2))
        #expect(attribution.failed?.count == 0)
        #expect(attribution.reverted == pages(4, 4))
    }

    @Test func outcomesThatContradictTheIoctlContractAreRejected() {
        #expect(throws: InconsistentOutcome.self) { try ioctl.attribute(IoctlOutcome(errno: 0, count: 4096)) }
        #expect(throws: InconsistentOutcome.self) { try ioctl.attribute(IoctlOutcome(errno: 14, count: 100)) }
        #expect(throws: InconsistentOutcome.self) { try ioctl.attribute(IoctlOutcome(errno: 14, count: 12 * 4096)) }
    }

    @Test func applyingAPartialFailureMovesExactlyTheRightPages() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 12), permissions: .rw)
        try ledger.free(pages(4, 4), at: at(9))
        for part in ioctl.parts { try ledger.trim(part.range) }
        let attribution = try ioctl.attribute(IoctlOutcome(errno: 14, count: 6 * 4096, result: 20))
        try ledger.apply(attribution, of: ioctl)
        #expect(ledger.state(of: 5) == .trimmed)
        #expect(ledger.state(of: 6) == .pooled(.rw, since: at(9)))
        #expect(ledger.state(of: 8) == .trimQueued(from: .committed(.rw)))
        #expect(ledger.counts.trimmed == 6)
        try ledger.checkInvariants()
    }
}
