import EDMMCore
import Testing

func pages(_ first: UInt64, _ count: UInt64) -> PageRange { PageRange(first: first, count: count) }
func at(_ nanoseconds: UInt64) -> MonotonicInstant { MonotonicInstant(nanoseconds: nanoseconds) }

/// A ledger managing pages [0, 1024).
func makeLedger() -> EnclaveLedger { EnclaveLedger(managedRange: pages(0, 1024)) }

@Suite struct EnclaveLedgerTransitions {
    @Test func allocatingHolesGrantsFreshPagesWithTheAskedPermissions() throws {
        var ledger = makeLedger()
        let grant = try ledger.allocate(pages(10, 5), permissions: .rw)
        #expect(grant == Grant(range: pages(10, 5), fresh: [pages(10, 5)], reused: []))
        #expect(ledger.state(of: 12) == .committed(.rw))
        #expect(ledger.counts.committed == 5)
        try ledger.checkInvariants()
    }

    @Test func freeMovesCommittedPagesToThePoolWithoutReleasingEPC() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 8), permissions: .rw)
        try ledger.free(pages(2, 4), at: at(100))
        #expect(ledger.state(of: 3) == .pooled(.rw, since: at(100)))
        #expect(ledger.counts.committed == 4)
        #expect(ledger.counts.pooled == 4)
        #expect(ledger.counts.epcPages == 8)
        try ledger.checkInvariants()
    }

    @Test func allocatingARangeReusesPooledPagesAndReportsThemSeparately() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rx)
        try ledger.free(pages(0, 4), at: at(1))
        let grant = try ledger.allocate(pages(2, 6), permissions: .rw)
        #expect(grant.fresh == [pages(4, 4)])
        #expect(grant.reused == [Grant.Reused(range: pages(2, 2), permissions: .rx)])
        #expect(ledger.state(of: 2) == .committed(.rx))
        #expect(ledger.state(of: 5) == .committed(.rw))
        try ledger.checkInvariants()
    }

    @Test func freeOfAHoleNamesTheFirstOffendingPageAndItsState() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rw)
        #expect(throws: LedgerError.wrongState(.free, page: 4, actual: nil)) {
            try ledger.free(pages(2, 4), at: at(1))
        }
    }

    @Test func freeingAPooledPageAgainIsRefused() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rw)
        try ledger.free(pages(0, 4), at: at(7))
        #expect(throws: LedgerError.wrongState(.free, page: 1, actual: .pooled(.rw, since: at(7)))) {
            try ledger.free(pages(1, 1), at: at(8))
        }
    }

    @Test func trimAcceptedForPagesNeverTrimmedIsRefused() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rw)
        #expect(throws: LedgerError.wrongState(.trimAccepted, page: 0, actual: .committed(.rw))) {
            try ledger.trimAccepted(pages(0, 4))
        }
    }

    @Test func requestsOverlappingQueuedWorkAreRefusedAsPendingWork() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 8), permissions: .rw)
        try ledger.trim(pages(4, 4))
        #expect(throws: LedgerError.pendingWork(.trim, page: 4, actual: .trimQueued(from: .committed(.rw)))) {
            try ledger.trim(pages(2, 4))
        }
        #expect(throws: LedgerError.pendingWork(.restrict, page: 4, actual: .trimQueued(from: .committed(.rw)))) {
            try ledger.restrict(pages(0, 8), to: .read)
        }
    }

    @Test func pagesOutsideTheManagedRangeAreRefused() {
        var ledger = makeLedger()
        #expect(throws: LedgerError.outOfManagedRange(pages(1020, 8), managed: pages(0, 1024))) {
            try ledger.allocate(pages(1020, 8), permissions: .rw)
        }
    }

    @Test func aRefusedTransitionLeavesTheLedgerUntouched() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 8), permissions: .rw)
        try ledger.free(pages(6, 2), at: at(1))
        let before = ledger.trackedRanges
        let counts = ledger.counts
        #expect(throws: LedgerError.self) { try ledger.restrict(pages(0, 8), to: .read) }
        #expect(ledger.trackedRanges == before)
        #expect(ledger.counts == counts)
    }

    @Test func aTrimmedPageGoesThroughTrimAcceptedAndRemovalBackToAHole() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rw)
        try ledger.trim(pages(0, 4))
        #expect(ledger.counts.trimQueued == 4)
        try ledger.complete(.trim, pages(0, 4))
        #expect(ledger.state(of: 0) == .trimmed)
        try ledger.trimAccepted(pages(0, 4))
        #expect(ledger.counts.removing == 4)
        try ledger.complete(.remove, pages(0, 4))
        #expect(ledger.state(of: 0) == nil)
        #expect(ledger.counts == PageCounts())
        try ledger.checkInvariants()
    }

    @Test func completedRestrictionLeavesTheIntersectionOfOldAndNewPermissions() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 2), permissions: .rx)
        try ledger.restrict(pages(0, 2), to: .rw)
        #expect(ledger.state(of: 0) == .restrictQueued(from: .rx, to: .rw))
        try ledger.complete(.restrict(.rw), pages(0, 2))
        #expect(ledger.state(of: 1) == .committed(.read))
    }

    @Test func completionForOtherPermissionsThanQueuedIsRefused() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 2), permissions: .rwx)
        try ledger.restrict(pages(0, 2), to: .read)
        #expect(
            throws: LedgerError.wrongState(
                .complete(.restrict(.rx)), page: 0, actual: .restrictQueued(from: .rwx, to: .read))
        ) {
            try ledger.complete(.restrict(.rx), pages(0, 2))
        }
    }

    @Test func writeWithoutReadIsRejectedBeforeAnyPageIsLookedAt() {
        var ledger = makeLedger()
        #expect(throws: LedgerError.invalidPermissions(.restrict, .write)) {
            try ledger.restrict(pages(0, 2), to: .write)
        }
        #expect(throws: LedgerError.invalidPermissions(.allocate, [.write, .execute])) {
            try ledger.allocate(pages(0, 2), permissions: [.write, .execute])
        }
    }

    @Test func relaxAddsPermissionsWithoutQueueingAnIoctl() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 2), permissions: .read)
        try ledger.relax(pages(0, 2), adding: .rx)
        #expect(ledger.state(of: 0) == .committed(.rx))
        #expect(ledger.counts.committed == 2)
    }

    @Test func aTCSPageCanOnlyBeTrimmed() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 1), permissions: .rw)
        try ledger.makeTCS(pages(0, 1))
        try ledger.complete(.makeTCS, pages(0, 1))
        #expect(ledger.counts.tcs == 1)
        #expect(throws: LedgerError.wrongState(.free, page: 0, actual: .tcs)) {
            try ledger.free(pages(0, 1), at: at(1))
        }
        #expect(throws: LedgerError.wrongState(.restrict, page: 0, actual: .tcs)) {
            try ledger.restrict(pages(0, 1), to: .read)
        }
        #expect(throws: LedgerError.wrongState(.makeTCS, page: 0, actual: .tcs)) { try ledger.makeTCS(pages(0, 1)) }
        try ledger.trim(pages(0, 1))
        #expect(ledger.state(of: 0) == .trimQueued(from: .tcs))
    }

    @Test func aFailedTrimOfPooledPagesPutsThemBackInThePoolWithTheirAge() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rw)
        try ledger.free(pages(0, 4), at: at(42))
        try ledger.reclaim(pages(0, 4))
        #expect(ledger.counts.pooled == 0)
        try ledger.revert(.trim, pages(0, 4))
        #expect(ledger.state(of: 0) == .pooled(.rw, since: at(42)))
        #expect(ledger.placement(pages: 4, permissions: .rw)?.fromPool == true)
        try ledger.checkInvariants()
    }

    @Test func completionOfPagesThatWereNeverQueuedIsRefused() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rw)
        #expect(throws: LedgerError.wrongState(.complete(.trim), page: 0, actual: .committed(.rw))) {
            try ledger.complete(.trim, pages(0, 4))
        }
        #expect(throws: LedgerError.wrongState(.revert(.remove), page: 4, actual: nil)) {
            try ledger.revert(.remove, pages(4, 1))
        }
    }

    @Test func reclaimTakesTheOldestPooledRangesFirst() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 30), permissions: .rw)
        try ledger.free(pages(20, 10), at: at(1))
        try ledger.free(pages(0, 10), at: at(2))
        try ledger.free(pages(10, 5), at: at(3))
        #expect(ledger.oldestPooled?.range == pages(20, 10))
        let taken = ledger.reclaimOldestPooled(pages: 14)
        // All of the oldest range, then the top 4 pages of the next oldest.
        #expect(taken == [pages(6, 4), pages(20, 10)])
        #expect(ledger.counts.trimQueued == 14)
        #expect(ledger.counts.pooled == 11)
        #expect(ledger.state(of: 6) == .trimQueued(from: .pooled(.rw, since: at(2))))
        try ledger.checkInvariants()
    }

    @Test func reclaimStopsWhenThePoolIsEmpty() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rw)
        try ledger.free(pages(0, 2), at: at(1))
        #expect(ledger.reclaimOldestPooled(pages: 100) == [pages(0, 2)])
        #expect(ledger.reclaimOldestPooled(pages: 100) == [])
    }
}

@Suite struct EnclaveLedgerPlacement {
    @Test func anywherePlacementPrefersThePoolThenTheLowestHole() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 100), permissions: .rw)
        try ledger.free(pages(50, 10), at: at(1))
        #expect(ledger.placement(pages: 8, permissions: .rw) == Placement(range: pages(50, 8), fromPool: true, room: 8))
        #expect(
            ledger.placement(pages: 20, permissions: .rw)
                == Placement(range: pages(100, 20), fromPool: false, room: 924))
    }

    @Test func poolPlacementOnlyReusesPagesWithTheAskedPermissions() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 10), permissions: .rx)
        try ledger.free(pages(0, 10), at: at(1))
        #expect(ledger.placement(pages: 4, permissions: .rw)?.range == pages(10, 4))
        #expect(ledger.placement(pages: 4, permissions: .rx)?.range == pages(0, 4))
    }

    @Test func placementFailsWhenNoRunIsLongEnough() throws {
        var ledger = EnclaveLedger(managedRange: pages(0, 16))
        _ = try ledger.allocate(pages(4, 1), permissions: .rw)
        _ = try ledger.allocate(pages(10, 1), permissions: .rw)
        #expect(ledger.placement(pages: 6, permissions: .rw) == nil)
        #expect(ledger.placement(pages: 5, permissions: .rw)?.range == pages(5, 5))
    }
}

/// `follow`: the ledger records what the device did for a client that gets the kernel's answers.
@Suite struct EnclaveLedgerFollowsTheDevice {
    @Test func followRecordsEachOperationsResultWhateverThePagesWere() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 4), permissions: .rw)
        try ledger.free(pages(2, 2), at: at(5))
        try ledger.follow(.trim, doneOn: pages(1, 2))  // one committed and one pooled page
        #expect(ledger.state(of: 1) == .trimmed && ledger.state(of: 2) == .trimmed)
        #expect(ledger.counts.pooled == 1)
        try ledger.follow(.remove, doneOn: pages(0, 2))  // a committed page never trimmed, and a trimmed one
        #expect(ledger.state(of: 0) == nil && ledger.state(of: 1) == nil)
        try ledger.follow(.restrict(.read), doneOn: pages(3, 1))
        #expect(ledger.state(of: 3) == .committed(.read))
        try ledger.follow(.makeTCS, doneOn: pages(8, 1))  // a hole the ledger never saw
        #expect(ledger.state(of: 8) == .tcs)
        #expect(ledger.counts.epcPages == 3)
        try ledger.checkInvariants()
    }

    @Test func followStaysInsideTheManagedRange() {
        var ledger = makeLedger()
        #expect(throws: LedgerError.self) { try ledger.follow(.trim, doneOn: pages(1023, 2)) }
    }
}
