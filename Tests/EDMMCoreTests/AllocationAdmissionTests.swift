import EDMMCore
import Testing

let noUsage = QuotaUsage(enclavePages: 0, uidPages: 0, machinePages: 0)

@Suite struct AllocationAdmission {
    @Test func anywhereAllocationFromThePoolChargesNoQuota() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 16), permissions: .rw)
        try ledger.free(pages(0, 16), at: at(1))
        let full = QuotaUsage(enclavePages: 16, uidPages: 16, machinePages: 16)
        let grant = try ledger.allocate(
            .anywhere(pages: 8), permissions: .rw, quota: QuotaPolicy(enclaveLimit: 16), growth: GrowthPolicy(),
            usage: full)
        #expect(
            grant == Grant(range: pages(0, 8), fresh: [], reused: [Grant.Reused(range: pages(0, 8), permissions: .rw)]))
    }

    @Test func aQuotaRefusalCarriesScopeAskedUsedAndLimit() {
        var ledger = makeLedger()
        let usage = QuotaUsage(enclavePages: 10, uidPages: 90, machinePages: 90)
        #expect(
            throws: AllocationError.quota(QuotaRefusal(scope: .uid, askedPages: 20, usedPages: 90, limitPages: 100))
        ) {
            try ledger.allocate(
                .anywhere(pages: 20), permissions: .rw, quota: QuotaPolicy(uidLimit: 100), growth: .disabled,
                usage: usage)
        }
        #expect(ledger.counts == PageCounts())
    }

    @Test func aFixedRangeAllocationIsChargedOnlyForItsFreshPages() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(0, 8), permissions: .rw)
        try ledger.free(pages(0, 8), at: at(1))
        let quota = QuotaPolicy(enclaveLimit: 12)
        let usage = QuotaUsage(enclavePages: 8, uidPages: 8, machinePages: 8)
        let grant = try ledger.allocate(
            .range(pages(0, 12)), permissions: .rw, quota: quota, growth: GrowthPolicy(), usage: usage)
        #expect(grant.freshPages == 4)
        #expect(grant.reusedPages == 8)
        #expect(
            throws: AllocationError.quota(QuotaRefusal(scope: .enclave, askedPages: 1, usedPages: 12, limitPages: 12))
        ) {
            try ledger.allocate(
                .range(pages(12, 1)), permissions: .rw, quota: quota, growth: GrowthPolicy(),
                usage: QuotaUsage(enclavePages: 12, uidPages: 12, machinePages: 12))
        }
    }

    @Test func growthGrantsMoreThanAskedButStopsAtTheNextTrackedPage() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(10, 1), permissions: .rw)
        _ = try ledger.allocate(pages(200, 64), permissions: .rw)  // held pages, so that only the room bounds the grant
        let grant = try ledger.allocate(
            .anywhere(pages: 2), permissions: .rw, quota: QuotaPolicy(), growth: GrowthPolicy(initialChunkPages: 64, heldPercent: 100),
            usage: noUsage)
        #expect(grant.range == pages(0, 10))
        #expect(grant.fresh == [pages(0, 10)])
    }

    @Test func growthNeverExceedsTheQuotaHeadroom() throws {
        var ledger = makeLedger()
        _ = try ledger.allocate(pages(200, 64), permissions: .rw)  // held pages, so that only the headroom bounds the grant
        let usage = QuotaUsage(enclavePages: 0, uidPages: 0, machinePages: 95)
        let grant = try ledger.allocate(
            .anywhere(pages: 2), permissions: .rw, quota: QuotaPolicy(machineLimit: 100),
            growth: GrowthPolicy(initialChunkPages: 64, heldPercent: 100),
            usage: usage)
        #expect(grant.range == pages(0, 4))  // 5 fit the headroom; the surplus comes in whole requests of 2
    }

    @Test func consecutiveGrowthDoublesTheChunkAndAFreeResetsIt() throws {
        var ledger = makeLedger()
        let growth = GrowthPolicy(initialChunkPages: 4, maximumChunkPages: 16, heldPercent: 100)
        _ = try ledger.allocate(pages(100, 64), permissions: .rw)  // held pages, so that only the chunk bounds the grants
        func grow() throws -> UInt64 {
            try ledger.allocate(
                .anywhere(pages: 1), permissions: .rw, quota: QuotaPolicy(), growth: growth, usage: noUsage
            ).range.count
        }
        #expect(try [grow(), grow(), grow(), grow()] == [4, 8, 16, 16])
        try ledger.free(pages(0, 1), at: at(1))
        #expect(try grow() == 1)  // the freed page, from the pool: no growth
        #expect(try grow() == 4)
    }

    @Test func growthFollowsWhatTheEnclaveHoldsAndShrinksAfterATeardown() throws {
        var ledger = makeLedger()
        let growth = GrowthPolicy(initialChunkPages: 16, maximumChunkPages: 2048, heldPercent: 25)
        func grow(_ asked: UInt64) throws -> PageRange {
            try ledger.allocate(
                .anywhere(pages: asked), permissions: .rw, quota: QuotaPolicy(), growth: growth, usage: noUsage
            ).range
        }
        _ = try ledger.allocate(pages(600, 400), permissions: .rw)
        // The chunk (16, 32, 64, 128, 256) or a quarter of the held pages beyond the asked ones,
        // whichever is smaller, in whole requests of 10 pages: 16 rounds down to 10, and the
        // fifth grant stops at a quarter of the 620 pages held (155, so 150 beyond the ten).
        #expect(try [grow(10), grow(10), grow(10), grow(10), grow(10)].map(\.count) == [10, 30, 60, 120, 160])
        try ledger.trim(pages(0, 380))
        try ledger.trim(pages(600, 400))
        #expect(ledger.counts.held == 0)
        #expect(try grow(10).count == 10)  // after the teardown, the heap starts again from nothing
    }

    @Test func anywhereAllocationWithoutRoomIsRefused() {
        var ledger = EnclaveLedger(managedRange: pages(0, 8))
        #expect(throws: AllocationError.ledger(.noContiguousSpace(pages: 9, managed: pages(0, 8)))) {
            try ledger.allocate(
                .anywhere(pages: 9), permissions: .rw, quota: QuotaPolicy(), growth: .disabled, usage: noUsage)
        }
        #expect(throws: AllocationError.ledger(.zeroPages(.allocate))) {
            try ledger.allocate(
                .anywhere(pages: 0), permissions: .rw, quota: QuotaPolicy(), growth: .disabled, usage: noUsage)
        }
    }
}

@Suite struct QuotaChecks {
    let usage = QuotaUsage(enclavePages: 10, uidPages: 50, machinePages: 500)

    @Test func anAllocationWithinEveryLimitPasses() {
        #expect(QuotaPolicy(enclaveLimit: 20, uidLimit: 60, machineLimit: 510).check(asked: 10, usage: usage) == nil)
        #expect(QuotaPolicy().check(asked: .max, usage: usage) == nil)
    }

    @Test func theNarrowestExceededScopeIsReported() {
        let policy = QuotaPolicy(enclaveLimit: 15, uidLimit: 55, machineLimit: 505)
        #expect(
            policy.check(asked: 6, usage: usage)
                == QuotaRefusal(scope: .enclave, askedPages: 6, usedPages: 10, limitPages: 15))
        #expect(QuotaPolicy(uidLimit: 55, machineLimit: 505).check(asked: 6, usage: usage)?.scope == .uid)
        #expect(QuotaPolicy(machineLimit: 505).check(asked: 6, usage: usage)?.scope == .machine)
    }

    @Test func usageAlreadyOverTheLimitRefusesEvenOnePage() {
        let refusal = QuotaPolicy(enclaveLimit: 5).check(asked: 1, usage: usage)
        #expect(refusal == QuotaRefusal(scope: .enclave, askedPages: 1, usedPages: 10, limitPages: 5))
        #expect(QuotaPolicy(enclaveLimit: 5).headroom(usage: usage) == 0)
    }

    @Test func headroomIsTheSmallestRemainderOverAllScopes() {
        #expect(QuotaPolicy(enclaveLimit: 100, uidLimit: 60).headroom(usage: usage) == 10)
        #expect(QuotaPolicy().headroom(usage: usage) == .max)
    }
}

@Suite struct GrowthGrants {
    @Test func disabledGrowthGrantsExactlyWhatWasAsked() {
        var state = GrowthState()
        #expect(GrowthPolicy.disabled.grant(asked: 3, room: 100, headroom: 100, held: 1000, state: &state) == 3)
    }

    @Test func aGrantIsNeverBelowTheAskedPages() {
        var state = GrowthState()
        let policy = GrowthPolicy(initialChunkPages: 16)
        #expect(policy.grant(asked: 40, room: 100, headroom: 100, held: 1000, state: &state) == 40)
        #expect(policy.grant(asked: 4, room: 4, headroom: 0, held: 1000, state: &state) == 4)
    }

    @Test func theChunkDoublesUpToTheMaximum() {
        var state = GrowthState()
        let policy = GrowthPolicy(initialChunkPages: 16, maximumChunkPages: 64, heldPercent: 100)
        let grants = (0..<4).map { _ in policy.grant(asked: 1, room: 1000, headroom: 1000, held: 1000, state: &state) }
        #expect(grants == [16, 32, 64, 64])
        state.reset()
        #expect(policy.grant(asked: 1, room: 1000, headroom: 1000, held: 1000, state: &state) == 16)
    }

    @Test func anEnclaveThatHoldsNothingIsGrantedWhatItAsks() {
        var state = GrowthState()
        let policy = GrowthPolicy(initialChunkPages: 16, heldPercent: 100)
        #expect(policy.grant(asked: 3, room: 1000, headroom: 1000, held: 0, state: &state) == 3)
    }

    @Test func thePagesBeyondTheAskedOnesAreBoundedByAShareOfTheHeldPages() {
        var state = GrowthState()
        state.chunkPages = 2048
        let policy = GrowthPolicy(initialChunkPages: 16, maximumChunkPages: 2048, heldPercent: 12)
        #expect(policy.grant(asked: 40, room: 1 << 20, headroom: 1 << 20, held: 1000, state: &state) == 40 + 120)
        #expect(policy.grant(asked: 4, room: 1 << 20, headroom: 1 << 20, held: 99, state: &state) == 4 + 8)  // 11, in fours
        #expect(policy.grant(asked: 40, room: 1 << 20, headroom: 1 << 20, held: 1 << 40, state: &state) == 2040)
    }

    @Test func aSurplusShorterThanTheRequestIsNotGranted() {
        var state = GrowthState()
        state.chunkPages = 2048
        let policy = GrowthPolicy(initialChunkPages: 16, maximumChunkPages: 2048, heldPercent: 6)
        // 6 % of 500 held pages is 30: a 40-page request gets no surplus, a 10-page one three more.
        #expect(policy.grant(asked: 40, room: 1 << 20, headroom: 1 << 20, held: 500, state: &state) == 40)
        #expect(policy.grant(asked: 10, room: 1 << 20, headroom: 1 << 20, held: 500, state: &state) == 40)
    }

    @Test func theHeldBoundNeitherOverflowsNorExceedsAHundredPercent() {
        var state = GrowthState()
        state.chunkPages = .max
        let policy = GrowthPolicy(initialChunkPages: 16, maximumChunkPages: .max, heldPercent: 500)
        #expect(policy.heldPercent == 100)
        #expect(policy.grant(asked: 7, room: .max, headroom: .max, held: .max, state: &state) == 7 + (UInt64.max - 7) / 7 * 7)
        #expect(policy.grant(asked: 7, room: .max, headroom: .max, held: 10, state: &state) == 14)
    }
}
