import EDMMCore
import PropertyBased
import Testing

let ledgerPageSpace = 64
let ledgerManaged = PageRange(first: 0, count: 48)

let queuedOperations = zip(Gen.int(in: 0...3), Gen.uint8(in: 0...7)).map { pair -> QueuedOperation in
    switch pair.0 {
    case 0: .trim
    case 1: .remove
    case 2: .restrict(PagePermissions(rawValue: pair.1))
    default: .makeTCS
    }
}

/// Steps aimed at pages in a given state, so that histories get deep into the state machine;
/// the reference model turns them into concrete steps before both sides run them.
enum Aim: CaseIterable {
    case completeQueued, revertQueued, acceptTrimmed, freeCommitted, trimCommitted, reclaimPooled, allocatePooled
}

enum PlannedStep: CustomStringConvertible {
    case concrete(LedgerStep)
    case aimed(Aim, page: UInt64, count: UInt64)

    var description: String {
        switch self {
        case .concrete(let step): step.description
        case .aimed(let aim, let page, let count): "\(aim) from \(page) up to \(count)"
        }
    }
}

let ledgerSteps = zip(
    Gen.int(in: 0...21), Gen.uint64(in: 0...52), Gen.uint64(in: 1...10), Gen.uint8(in: 0...7), queuedOperations
).map { kind, first, count, bits, operation -> PlannedStep in
    let range = PageRange(first: first, count: count)
    let permissions = PagePermissions(rawValue: bits)
    switch kind {
    case 0, 1, 2: return .concrete(.allocate(range, permissions))
    case 3: return .concrete(.free(range))
    case 4: return .concrete(.trim(range))
    case 5: return .concrete(.reclaim(range))
    case 6: return .concrete(.trimAccepted(range))
    case 7: return .concrete(.restrict(range, permissions))
    case 8: return .concrete(.relax(range, permissions))
    case 9: return .concrete(.makeTCS(range))
    case 10: return .concrete(.complete(operation, range))
    case 11: return .concrete(.revert(operation, range))
    case 12: return .concrete(.reclaimOldest(count))
    default: return .aimed(Aim.allCases[(kind - 13) % Aim.allCases.count], page: first, count: count)
    }
}.array(of: 0...80)

extension NaiveLedger {
    /// The concrete step for a planned one: an aimed step takes up to `count` pages of the first
    /// run of matching pages at or after `page` (a refused random step when there is none).
    func concretize(_ planned: PlannedStep) -> LedgerStep {
        guard case .aimed(let aim, let page, let count) = planned else {
            if case .concrete(let step) = planned { return step }
            return .reclaimOldest(0)
        }
        let runs = states.runs(in: states.all).filter { $0.range.end > page && matches(aim, $0.value) }
        guard let run = runs.first else { return .complete(.trim, PageRange(first: page, count: count)) }
        let first = max(run.range.first, page)
        let range = PageRange(first: first, count: min(count, run.range.end - first))
        switch (aim, run.value) {
        case (.completeQueued, let state): return .complete(Self.operation(of: state), range)
        case (.revertQueued, let state): return .revert(Self.operation(of: state), range)
        case (.acceptTrimmed, _): return .trimAccepted(range)
        case (.freeCommitted, _): return .free(range)
        case (.trimCommitted, _): return .trim(range)
        case (.reclaimPooled, _): return .reclaim(range)
        case (.allocatePooled, _): return .allocate(PageRange(first: range.first, count: count), .rw)
        }
    }

    private func matches(_ aim: Aim, _ state: PageState) -> Bool {
        switch (aim, state) {
        case (.completeQueued, let s), (.revertQueued, let s): s.isPending
        case (.acceptTrimmed, .trimmed): true
        case (.freeCommitted, .committed), (.trimCommitted, .committed), (.trimCommitted, .tcs): true
        case (.reclaimPooled, .pooled), (.allocatePooled, .pooled): true
        default: false
        }
    }

    private static func operation(of state: PageState) -> QueuedOperation {
        switch state {
        case .removeQueued: .remove
        case .restrictQueued(_, let to): .restrict(to)
        case .tcsQueued: .makeTCS
        default: .trim
        }
    }
}

func run(_ step: LedgerStep, on ledger: inout EnclaveLedger, at now: MonotonicInstant) -> StepResult {
    do {
        switch step {
        case .allocate(let range, let permissions):
            return .granted(try ledger.allocate(range, permissions: permissions))
        case .free(let range): try ledger.free(range, at: now)
        case .trim(let range): try ledger.trim(range)
        case .reclaim(let range): try ledger.reclaim(range)
        case .trimAccepted(let range): try ledger.trimAccepted(range)
        case .restrict(let range, let permissions): try ledger.restrict(range, to: permissions)
        case .relax(let range, let permissions): try ledger.relax(range, adding: permissions)
        case .makeTCS(let range): try ledger.makeTCS(range)
        case .complete(let operation, let range): try ledger.complete(operation, range)
        case .revert(let operation, let range): try ledger.revert(operation, range)
        case .reclaimOldest(let wanted): return .reclaimed(ledger.reclaimOldestPooled(pages: wanted))
        }
        return .ok
    } catch {
        return .refused(error)
    }
}

@Suite struct EnclaveLedgerProperties {
    @Test func everyStepMatchesThePerPageReferenceModel() async {
        await propertyCheck(count: 400, input: ledgerSteps) { steps in
            var ledger = EnclaveLedger(managedRange: ledgerManaged)
            var model = NaiveLedger(managed: ledgerManaged, size: ledgerPageSpace)
            for (index, planned) in steps.enumerated() {
                let now = MonotonicInstant(nanoseconds: UInt64(index))
                let step = model.concretize(planned)
                let expected = model.run(step, at: now)
                let actual = run(step, on: &ledger, at: now)
                #expect(actual == expected, "step \(index): \(step)")
                if actual != expected { return }
            }
            for page in 0..<UInt64(ledgerPageSpace) {
                #expect(ledger.state(of: page) == model.states[page], "page \(page)")
            }
            #expect(ledger.counts == model.counts)
            #expect(throws: Never.self) { try ledger.checkInvariants() }
        }
    }

    @Test func placementMatchesTheReferenceModel() async {
        await propertyCheck(count: 300, input: ledgerSteps, Gen.uint64(in: 1...12), Gen.uint8(in: 0...7)) {
            steps, count, bits in
            var ledger = EnclaveLedger(managedRange: ledgerManaged)
            var model = NaiveLedger(managed: ledgerManaged, size: ledgerPageSpace)
            for (index, planned) in steps.enumerated() {
                let now = MonotonicInstant(nanoseconds: UInt64(index))
                let step = model.concretize(planned)
                _ = model.run(step, at: now)
                _ = run(step, on: &ledger, at: now)
            }
            let permissions = PagePermissions(rawValue: bits)
            #expect(
                ledger.placement(pages: count, permissions: permissions)
                    == model.placement(pages: count, permissions: permissions))
        }
    }
}
