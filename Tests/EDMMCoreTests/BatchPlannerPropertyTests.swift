import EDMMCore
import PropertyBased
import Testing

/// Disjoint requests laid out left to right (gap, length, operation), then arrival order rotated.
let requestLayouts = zip(Gen.uint64(in: 0...2), Gen.uint64(in: 1...6), queuedOperations)
    .array(of: 1...40)

func requests(from layout: [(UInt64, UInt64, QueuedOperation)], rotatedBy rotation: Int) -> [QueuedRequest] {
    var cursor: UInt64 = 0
    var result: [QueuedRequest] = []
    for (index, (gap, length, operation)) in layout.enumerated() {
        cursor += gap
        result.append(
            QueuedRequest(
                id: RequestID(UInt64(index)), operation: operation, range: PageRange(first: cursor, count: length)))
        cursor += length
    }
    let shift = rotation % result.count
    return Array(result[shift...] + result[..<shift])
}

/// Maximal runs of touching ranges per operation: the fewest ioctls possible.
func fewestIoctls(_ requests: [QueuedRequest]) -> Int {
    Dictionary(grouping: requests, by: \.operation).values.reduce(0) { total, group in
        let sorted = group.map(\.range).sorted { $0.first < $1.first }
        return total + 1 + zip(sorted, sorted.dropFirst()).filter { $0.end != $1.first }.count
    }
}

@Suite struct BatchPlannerProperties {
    @Test func aBatchedPlanCoversEveryRequestOnceWithTheFewestIoctls() async throws {
        await propertyCheck(count: 300, input: requestLayouts, Gen.int(in: 0...50)) { layout, rotation in
            let queued = requests(from: layout, rotatedBy: rotation)
            let plan = try BatchPlanner().plan(queued)
            #expect(plan.count == fewestIoctls(queued))
            for ioctl in plan {
                #expect(ioctl.parts.first?.range.first == ioctl.range.first)
                #expect(ioctl.parts.last?.range.end == ioctl.range.end)
                for (lower, upper) in zip(ioctl.parts, ioctl.parts.dropFirst()) {
                    #expect(lower.range.end == upper.range.first)
                }
            }
            let planned = plan.flatMap { ioctl in
                ioctl.parts.map { QueuedRequest(id: $0.request, operation: ioctl.operation, range: $0.range) }
            }
            #expect(Set(planned) == Set(queued))
            #expect(planned.count == queued.count)
            #expect(try BatchPlanner().plan(queued.reversed()) == plan)
        }
    }

    @Test func anUnbatchedPlanIsOneIoctlPerRequestInArrivalOrder() async throws {
        await propertyCheck(count: 100, input: requestLayouts, Gen.int(in: 0...50)) { layout, rotation in
            let queued = requests(from: layout, rotatedBy: rotation)
            let plan = try BatchPlanner(batching: false).plan(queued)
            #expect(plan.map { $0.parts.map(\.request) } == queued.map { [$0.id] })
        }
    }

    @Test func attributionAccountsForEveryPartAndReplanningFinishesTheRest() async throws {
        await propertyCheck(count: 300, input: requestLayouts, Gen.int(in: 0...1000), Gen.bool) {
            layout, failAt, fail in
            let queued = requests(from: layout, rotatedBy: 0)
            let plan = try BatchPlanner().plan(queued)
            let ioctl = plan[failAt % plan.count]
            let outcome =
                fail
                ? IoctlOutcome(errno: 14, count: UInt64(failAt) % ioctl.range.count * 4096, result: 20)
                : IoctlOutcome.success(ioctl.range)
            let attribution = try ioctl.attribute(outcome)
            let accounted =
                attribution.succeeded + (attribution.failed.map { [$0.request] } ?? [])
                + attribution.unreached.map(\.id)
            #expect(accounted == ioctl.parts.map(\.request))
            #expect(attribution.failed == nil || fail)
            if let failed = attribution.failed,
                let failedPart = ioctl.parts.first(where: { $0.request == failed.request })
            {
                #expect(failed.count == outcome.count - (failedPart.range.first - ioctl.range.first) * 4096)
            }
            let replanned = try BatchPlanner().plan(attribution.unreached)
            #expect(Set(replanned.flatMap { $0.parts.map(\.request) }) == Set(attribution.unreached.map(\.id)))
        }
    }
}

/// Queues `requests` in a fresh ledger through the client verbs, so that each request's pages
/// are in the queued state its operation expects.
func ledgerQueueing(_ requests: [QueuedRequest]) throws -> EnclaveLedger {
    var ledger = EnclaveLedger(managedRange: PageRange(first: 0, count: 1024))
    _ = try ledger.allocate(PageRange(first: 0, count: 512), permissions: .rwx)
    for request in requests {
        switch request.operation {
        case .trim:
            try ledger.trim(request.range)
        case .remove:
            try ledger.trim(request.range)
            try ledger.complete(.trim, request.range)
            try ledger.trimAccepted(request.range)
        case .restrict(let permissions):
            try ledger.restrict(request.range, to: permissions)
        case .makeTCS:
            try ledger.makeTCS(request.range)
        }
    }
    return ledger
}

/// Restrictions to write-only are refused by the ledger; the generator's permissions are made valid.
func validated(_ requests: [QueuedRequest]) -> [QueuedRequest] {
    requests.map { request in
        guard case .restrict(let permissions) = request.operation, !permissions.isValidForSGX else { return request }
        return QueuedRequest(id: request.id, operation: .restrict(permissions.union(.read)), range: request.range)
    }
}

extension BatchPlannerProperties {
    @Test func aFlushWithRandomFailuresAnswersEveryRequestOnceAndLeavesNothingQueued() async throws {
        await propertyCheck(count: 200, input: requestLayouts, Gen.uint64(in: 0...UInt64.max)) { layout, failureSeed in
            let queued = validated(requests(from: layout, rotatedBy: 0))
            var ledger = try ledgerQueueing(queued)
            var answered: [RequestID] = []
            var failures = failureSeed
            var pending = queued
            while !pending.isEmpty {
                var unreached: [QueuedRequest] = []
                for ioctl in try BatchPlanner().plan(pending) {
                    // One ioctl in three fails, at a pseudo-random page.
                    failures = failures &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    let outcome =
                        failures >> 62 == 0
                        ? IoctlOutcome(errno: 14, count: (failures >> 8) % ioctl.range.count * 4096, result: 20)
                        : .success(ioctl.range)
                    let attribution = try ioctl.attribute(outcome)
                    try ledger.apply(attribution, of: ioctl)
                    answered += attribution.succeeded + (attribution.failed.map { [$0.request] } ?? [])
                    unreached += attribution.unreached
                }
                pending = unreached
            }
            #expect(answered.sorted() == queued.map(\.id).sorted())
            let counts = ledger.counts
            #expect(counts.trimQueued + counts.removeQueued + counts.restrictQueued + counts.tcsQueued == 0)
            #expect(throws: Never.self) { try ledger.checkInvariants() }
        }
    }
}
