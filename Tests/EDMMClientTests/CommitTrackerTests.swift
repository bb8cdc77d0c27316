import EDMMClient
import EDMMCore
import EDMMSimHost
import Testing

/// The enclave's own page record: what it accepts from edmmd and what it refuses.
@Suite struct CommitTrackerTests {
    let managed = PageRange(first: 256, count: 1024)

    func holding(_ range: PageRange) throws -> CommitTracker {
        var t = CommitTracker(managed: managed)
        try t.admitGrant(granted: range, fresh: [range], reused: [], asked: .count(range.count), permissions: .rw)
        return t
    }

    @Test func aFreshGrantOfAPageTheEnclaveHoldsIsADoubleAccept() throws {
        var t = try holding(PageRange(first: 256, count: 4))
        let before = t.pages
        #expect(throws: HostSafetyViolation.doubleAccept(offset: 258 << 12, heldAs: "in use rw-")) {
            try t.admitGrant(
                granted: PageRange(first: 258, count: 4), fresh: [PageRange(first: 258, count: 4)], reused: [],
                asked: .count(4), permissions: .rw)
        }
        #expect(t.pages == before)
    }

    @Test func aFreshGrantOfAFreedPageIsADoubleAcceptToo() throws {
        var t = try holding(PageRange(first: 256, count: 4))
        try t.free(PageRange(first: 256, count: 4))
        #expect(throws: HostSafetyViolation.doubleAccept(offset: 256 << 12, heldAs: "freed rw-")) {
            try t.admitGrant(
                granted: PageRange(first: 256, count: 4), fresh: [PageRange(first: 256, count: 4)], reused: [],
                asked: nil, permissions: .rw)
        }
    }

    @Test func aPageGivenUpWithEacceptTrimMayComeBackFresh() throws {
        let range = PageRange(first: 256, count: 4)
        var t = try holding(range)
        try t.trim(range)
        #expect(throws: HostSafetyViolation.doubleAccept(offset: 256 << 12, heldAs: "trimming")) {
            try t.admitGrant(granted: range, fresh: [range], reused: [], asked: nil, permissions: .rw)
        }
        t.trimAccepted(range)
        try t.admitGrant(granted: range, fresh: [range], reused: [], asked: nil, permissions: .rw)
        // The late reply to TRIM_ACCEPTED leaves the new pages alone.
        t.removed(range)
        #expect(t.pages[257] == .inUse(.rw))
    }

    @Test func reusedPagesMustBePagesTheEnclaveFreed() throws {
        var t = try holding(PageRange(first: 256, count: 4))
        try t.free(PageRange(first: 256, count: 2))
        #expect(throws: HostSafetyViolation.reuseOfPageNotFreed(offset: 258 << 12, heldAs: "in use rw-")) {
            try t.admitGrant(
                granted: PageRange(first: 256, count: 4), fresh: [], reused: [PageRange(first: 256, count: 4)],
                asked: nil, permissions: .rw)
        }
        try t.admitGrant(
            granted: PageRange(first: 256, count: 2), fresh: [], reused: [PageRange(first: 256, count: 2)], asked: .count(2),
            permissions: .rw)
        #expect(t.pages[256] == .inUse(.rw))
    }

    @Test func aGrantMustBePartitionedByItsFreshAndReusedRanges() throws {
        var t = CommitTracker(managed: managed)
        #expect(throws: HostSafetyViolation.self) {
            try t.admitGrant(
                granted: PageRange(first: 300, count: 4), fresh: [PageRange(first: 300, count: 3)], reused: [], asked: nil, permissions: .rw
            )
        }
        #expect(throws: HostSafetyViolation.self) {
            try t.admitGrant(
                granted: PageRange(first: 300, count: 4), fresh: [PageRange(first: 300, count: 3), PageRange(first: 302, count: 2)],
                reused: [], asked: nil, permissions: .rw)
        }
        #expect(t.pages.isEmpty)
    }

    @Test func aGrantMustCoverWhatWasAskedAndStayInTheManagedRange() throws {
        var t = CommitTracker(managed: managed)
        let small = PageRange(first: 300, count: 2)
        #expect(throws: HostSafetyViolation.self) {
            try t.admitGrant(granted: small, fresh: [small], reused: [], asked: .count(4), permissions: .rw)
        }
        #expect(throws: HostSafetyViolation.self) {
            try t.admitGrant(granted: small, fresh: [small], reused: [], asked: .range(PageRange(first: 299, count: 2)), permissions: .rw)
        }
        let outside = PageRange(first: 8, count: 2)
        #expect(throws: HostSafetyViolation.self) {
            try t.admitGrant(granted: outside, fresh: [outside], reused: [], asked: nil, permissions: .rw)
        }
    }

    @Test func aReclaimNoticeForPagesInUseIsRefused() throws {
        var t = try holding(PageRange(first: 256, count: 8))
        try t.free(PageRange(first: 256, count: 4))
        #expect(throws: HostSafetyViolation.reclaimOfPageNotFreed(offset: 260 << 12, heldAs: "in use rw-")) {
            try t.admitReclaim([PageRange(first: 256, count: 6)])
        }
        #expect(t.pages[256] == .freed(.rw))
        try t.admitReclaim([PageRange(first: 256, count: 4)])
        #expect(t.pages[257] == .trimming)
    }

    @Test func freeTrimAndRemoveReturnPagesToHoles() throws {
        var t = try holding(PageRange(first: 256, count: 8))
        try t.trim(PageRange(first: 256, count: 8))
        t.trimAccepted(PageRange(first: 256, count: 8))
        #expect(t.pages[260] == .trimAccepted)
        t.removed(PageRange(first: 256, count: 8))
        #expect(t.pages.isEmpty)
    }

    @Test func theEnclaveCannotFreeOrTrimWhatItDoesNotHold() throws {
        var t = try holding(PageRange(first: 256, count: 2))
        #expect(throws: CommitTracker.NotHeld(offset: 258 << 12, state: "hole")) { try t.free(PageRange(first: 256, count: 4)) }
        try t.free(PageRange(first: 256, count: 2))
        #expect(throws: CommitTracker.NotHeld(offset: 256 << 12, state: "freed rw-")) { try t.trim(PageRange(first: 256, count: 1)) }
    }

    @Test func restrictThenRelaxTracksThePermissions() throws {
        var t = try holding(PageRange(first: 256, count: 2))
        try t.restrict(PageRange(first: 256, count: 2), to: .read)
        #expect(t.pages[256] == .restricting(from: .rw, to: .read))
        t.restricted(PageRange(first: 256, count: 2))
        #expect(t.pages[256] == .inUse(.read))
        try t.relax(PageRange(first: 256, count: 1), to: .rw)
        #expect(t.pages[256] == .inUse(.rw))
        #expect(t.pages[257] == .inUse(.read))
    }

    @Test func aRefusedRequestIsUndone() throws {
        var t = try holding(PageRange(first: 256, count: 4))
        let saved = t.runs(in: PageRange(first: 254, count: 8))
        try t.trim(PageRange(first: 256, count: 4))
        t.restore(saved)
        #expect(t.pages[256] == .inUse(.rw))
        #expect(t.pages[254] == nil)
    }
}
