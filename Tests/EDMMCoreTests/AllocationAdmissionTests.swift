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
        let grant = try ledger.allocate(
            .anywhere(pages: 2), permissions: .rw, quota: QuotaPolicy(), growth: GrowthPolicy(initialChunkPages: 64),
            usage: noUsage)
        #expect(grant.range == pages(0, 10))
        #expect(grant.fresh == [pages(0, 10)])
    }

    @Test func growthNeverExceedsTheQuotaHeadroom() throws {
        var ledger = makeLedger()
        let usage = QuotaUsage(enclavePages: 0, uidPages: 0, machinePages: 95)
        let grant = try ledger.allocate(
            .anywhere(pages: 2), permissions: .rw, quota: QuotaPolicy(machineLimit: 100),
            growth: GrowthPolicy(initialChunkPages: 64),
            usage: usage)
        #expect(grant.range == pages(0, 5))
    }

    @Test func consecutiveGrowthDoublesTheChunkAndAFreeResetsIt() throws {
        var ledger = makeLedger()
        let growth = GrowthPolicy(initialChunkPages: 4, maximumChunkPages: 16)
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
        #expect(GrowthPolicy.disabled.grant(asked: 3, room: 100, headroom: 100, state: &state) == 3)
    }

    @Test func aGrantIsNeverBelowTheAskedPages() {
        var state = GrowthState()
        #expect(GrowthPolicy(initialChunkPages: 16).grant(asked: 40, room: 100, headroom: 100, state: &state) == 40)
        #expect(GrowthPolicy(initialChunkPages: 16).grant(asked: 4, room: 4, headroom: 0, state: &state) == 4)
    }

    @Test func theChunkDoublesUpToTheMaximum() {
        var state = GrowthState()
        let policy = GrowthPolicy(initialChunkPages: 16, maximumChunkPages: 64)
        let grants = (0..<4).map { _ in policy.grant(asked: 1, room: 1000, headroom: 1000, state: &state) }
        #expect(grants == [16, 32, 64, 64])
        state.reset()
        #expect(policy.grant(asked: 1, room: 1000, headroom: 1000, state: &state) == 16)
    }
}
