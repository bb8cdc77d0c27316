import EDMMCore
import Testing

func pool(_ id: UInt64, active: UInt64, pooled: UInt64, epc: UInt64) -> PoolReclaimPolicy.EnclavePool {
    PoolReclaimPolicy.EnclavePool(enclave: EnclaveID(id), lastActivity: at(active), pooledPages: pooled, epcPages: epc)
}

@Suite struct PoolReclaimDecisions {
    let policy = PoolReclaimPolicy()

    @Test func aPoolAboveTheThresholdIsReclaimedDownToTheTarget() {
        // 400 of 1000 pages pooled: above 25 %, so back to max(256, 10 % of 1000) = 256.
        #expect(policy.thresholdExcess(pooledPages: 400, epcPages: 1000) == 144)
        // 4000 of 10000: back to 10 % = 1000.
        #expect(policy.thresholdExcess(pooledPages: 4000, epcPages: 10000) == 3000)
    }

    @Test func poolsBelowTheThresholdOrTheMinimumAreLeftAlone() {
        #expect(policy.thresholdExcess(pooledPages: 2000, epcPages: 10000) == 0)
        #expect(policy.thresholdExcess(pooledPages: 200, epcPages: 300) == 0)
    }

    @Test func pressureStartsAtTheHighWatermarkAndLastsDownToTheLowOne() {
        var policy = PoolReclaimPolicy()
        #expect(policy.pressureDeficit(usedPages: 850, totalPages: 1000) == 0)
        #expect(policy.pressureDeficit(usedPages: 900, totalPages: 1000) == 100)
        #expect(policy.underPressure)
        #expect(policy.pressureDeficit(usedPages: 850, totalPages: 1000) == 50)
        #expect(policy.pressureDeficit(usedPages: 800, totalPages: 1000) == 0)
        #expect(!policy.underPressure)
        #expect(policy.pressureDeficit(usedPages: 850, totalPages: 1000) == 0)
    }

    @Test func underPressureTheLeastRecentlyActiveEnclavesGiveTheirPoolsFirst() {
        var policy = PoolReclaimPolicy(PoolReclaimPolicy.Configuration(minimumPoolPages: 1_000_000))
        let enclaves = [
            pool(1, active: 300, pooled: 50, epc: 400),
            pool(2, active: 100, pooled: 30, epc: 300),
            pool(3, active: 200, pooled: 40, epc: 300),
        ]
        let orders = policy.plan(enclaves: enclaves, machineUsedPages: 900, machineTotalPages: 1000)
        // 100 pages needed: all of enclave 2 (idlest), all of 3, then 30 of 1.
        #expect(orders.map(\.enclave) == [EnclaveID(2), EnclaveID(3), EnclaveID(1)])
        #expect(orders.map(\.pages) == [30, 40, 30])
    }

    @Test func thresholdOrdersCountTowardsThePressureDeficit() {
        var policy = PoolReclaimPolicy(PoolReclaimPolicy.Configuration(minimumPoolPages: 0))
        let enclaves = [pool(1, active: 100, pooled: 10, epc: 100), pool(2, active: 200, pooled: 500, epc: 800)]
        // Enclave 2 is over 25 %: 420 pages by threshold, which already covers the deficit of 120.
        let orders = policy.plan(enclaves: enclaves, machineUsedPages: 920, machineTotalPages: 1000)
        #expect(orders == [PoolReclaimPolicy.Order(enclave: EnclaveID(2), pages: 420)])
    }

    @Test func withoutPressureOrExcessNothingIsReclaimed() {
        var policy = PoolReclaimPolicy()
        #expect(
            policy.plan(
                enclaves: [pool(1, active: 0, pooled: 100, epc: 1000)], machineUsedPages: 10, machineTotalPages: 1000
            ).isEmpty)
    }

    @Test func selectedVictimsAreTheOldestPooledRangesOfEachEnclave() throws {
        var ledgers: [EnclaveID: EnclaveLedger] = [EnclaveID(1): makeLedger(), EnclaveID(2): makeLedger()]
        for (id, var ledger) in ledgers {
            _ = try ledger.allocate(pages(0, 300), permissions: .rw)
            try ledger.free(pages(200, 100), at: at(10))
            try ledger.free(pages(0, 100), at: at(20))
            ledgers[id] = ledger
        }
        var policy = PoolReclaimPolicy()
        let enclaves = [pool(1, active: 50, pooled: 200, epc: 300), pool(2, active: 40, pooled: 200, epc: 300)]
        let victims = policy.selectVictims(enclaves: enclaves, machineUsedPages: 600, machineTotalPages: 600) {
            id, count in
            ledgers[id]?.reclaimOldestPooled(pages: count) ?? []
        }
        // Each enclave is over the threshold (200 of 300 pooled) and keeps 256 pages at most... of
        // which it has only 200, so the threshold orders nothing; pressure needs 600 - 480 = 120:
        // enclave 2 (idlest) gives its oldest 100 pages and the top 20 of the next range.
        #expect(victims == [PoolReclaimPolicy.Victim(enclave: EnclaveID(2), ranges: [pages(80, 20), pages(200, 100)])])
        #expect(ledgers[EnclaveID(2)]?.counts.trimQueued == 120)
    }
}

@Suite struct PressureFromTheDeviceOccupancy {
    let enclaves = [pool(1, active: 100, pooled: 300, epc: 400), pool(2, active: 200, pooled: 300, epc: 400)]
    var policy = PoolReclaimPolicy(PoolReclaimPolicy.Configuration(minimumPoolPages: 1_000_000))

    func occupancy(used: UInt64, _ measure: EPCOccupancy.Measure = .ledgers, reclaiming: Bool) -> EPCOccupancy {
        EPCOccupancy(totalPages: 1000, usedPages: used, measure: measure, deviceReclaiming: reclaiming)
    }

    @Test mutating func aReclaimingDeviceMeansAFullEPCWhateverTheLowerBoundSays() {
        // The ledgers see 500 of 1000 pages, but ksgxd ran: the EPC is full, so back to 80 %.
        let orders = policy.plan(enclaves: enclaves, occupancy: occupancy(used: 500, reclaiming: true), leavingPages: 0)
        #expect(orders == [PoolReclaimPolicy.Order(enclave: EnclaveID(1), pages: 200)])
        #expect(policy.underPressure)
    }

    @Test mutating func aLowerBoundBelowTheWatermarkWithAnIdleReclaimerIsNoPressure() {
        #expect(policy.plan(enclaves: enclaves, occupancy: occupancy(used: 500, reclaiming: false), leavingPages: 0).isEmpty)
        #expect(!policy.underPressure)
    }

    @Test mutating func pagesAlreadyLeavingAreNotReclaimedAgain() {
        // 1000 used, 50 already on their way out: 950 counts, 150 more to reach 800.
        let orders = policy.plan(enclaves: enclaves, occupancy: occupancy(used: 1000, .device, reclaiming: false), leavingPages: 50)
        #expect(orders == [PoolReclaimPolicy.Order(enclave: EnclaveID(1), pages: 150)])
    }

    @Test mutating func anUnknownEPCSizeLeavesOnlyThePerEnclaveThreshold() {
        let unknown = EPCOccupancy(totalPages: 0, usedPages: 5000, measure: .ledgers, deviceReclaiming: true)
        #expect(policy.plan(enclaves: enclaves, occupancy: unknown, leavingPages: 0).isEmpty)
        #expect(!policy.underPressure)
    }
}
