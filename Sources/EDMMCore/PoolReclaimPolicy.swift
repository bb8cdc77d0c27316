/// When and from whom the lazy-free pool is given back to the EPC.
///
/// Two rules, both only ever take pooled pages (never pages in use):
/// - Threshold, per enclave: when an enclave's pool exceeds `thresholdPercent` of the EPC pages
///   it holds (and `minimumPoolPages`), reclaim down to `targetPercent`.
/// - Pressure, machine-wide: when EPC use reaches `highWatermarkPercent` of the total, reclaim
///   until it is back at `lowWatermarkPercent`; pressure ends only there (hysteresis). Victims are
///   the least recently active enclaves first, each giving its whole pool before the next.
/// Within an enclave the oldest pooled ranges go first (`EnclaveLedger.reclaimOldestPooled`).
public struct PoolReclaimPolicy: Hashable, Sendable {
    public struct Configuration: Hashable, Sendable {
        public var thresholdPercent: UInt64
        public var targetPercent: UInt64
        public var minimumPoolPages: UInt64
        public var highWatermarkPercent: UInt64
        public var lowWatermarkPercent: UInt64

        /// Defaults: threshold 25 %, target 10 %, pools of up to 256 pages (1 MiB) left alone,
        /// pressure from 90 % EPC use down to 80 %.
        public init(
            thresholdPercent: UInt64 = 25, targetPercent: UInt64 = 10, minimumPoolPages: UInt64 = 256,
            highWatermarkPercent: UInt64 = 90, lowWatermarkPercent: UInt64 = 80
        ) {
            self.thresholdPercent = thresholdPercent
            self.targetPercent = Swift.min(targetPercent, thresholdPercent)
            self.minimumPoolPages = minimumPoolPages
            self.highWatermarkPercent = highWatermarkPercent
            self.lowWatermarkPercent = Swift.min(lowWatermarkPercent, highWatermarkPercent)
        }
    }

    /// One enclave as the machine-wide decision sees it.
    public struct EnclavePool: Hashable, Sendable {
        public var enclave: EnclaveID
        public var lastActivity: MonotonicInstant
        public var pooledPages: UInt64
        public var epcPages: UInt64

        public init(enclave: EnclaveID, lastActivity: MonotonicInstant, pooledPages: UInt64, epcPages: UInt64) {
            self.enclave = enclave
            self.lastActivity = lastActivity
            self.pooledPages = pooledPages
            self.epcPages = epcPages
        }
    }

    /// Reclaim this many pooled pages from this enclave.
    public struct Order: Hashable, Sendable {
        public var enclave: EnclaveID
        public var pages: UInt64

        public init(enclave: EnclaveID, pages: UInt64) {
            self.enclave = enclave
            self.pages = pages
        }
    }

    /// The pages chosen in one enclave.
    public struct Victim: Hashable, Sendable {
        public var enclave: EnclaveID
        public var ranges: [PageRange]

        public init(enclave: EnclaveID, ranges: [PageRange]) {
            self.enclave = enclave
            self.ranges = ranges
        }
    }

    public let configuration: Configuration
    /// Machine-wide pressure, kept between evaluations for hysteresis.
    public private(set) var underPressure = false

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Pooled pages one enclave should give back under the threshold rule.
    public func thresholdExcess(pooledPages: UInt64, epcPages: UInt64) -> UInt64 {
        guard pooledPages > configuration.minimumPoolPages,
            pooledPages > Self.percent(configuration.thresholdPercent, of: epcPages)
        else { return 0 }
        let keep = Swift.max(configuration.minimumPoolPages, Self.percent(configuration.targetPercent, of: epcPages))
        return pooledPages > keep ? pooledPages - keep : 0
    }

    /// Updates the pressure state from machine-wide EPC use and returns how many pages must be
    /// given back to reach the low watermark (0 when not under pressure).
    public mutating func pressureDeficit(usedPages: UInt64, totalPages: UInt64) -> UInt64 {
        let high = Self.percent(configuration.highWatermarkPercent, of: totalPages)
        let low = Self.percent(configuration.lowWatermarkPercent, of: totalPages)
        if usedPages >= high {
            underPressure = true
        } else if usedPages <= low {
            underPressure = false
        }
        return underPressure && usedPages > low ? usedPages - low : 0
    }

    /// Both rules over all enclaves: one order per enclave that must give pages back, least
    /// recently active first.
    public mutating func plan(enclaves: [EnclavePool], machineUsedPages: UInt64, machineTotalPages: UInt64) -> [Order] {
        orders(enclaves, pressureDeficit: pressureDeficit(usedPages: machineUsedPages, totalPages: machineTotalPages))
    }

    private func orders(_ enclaves: [EnclavePool], pressureDeficit: UInt64) -> [Order] {
        let idleFirst = enclaves.sorted { ($0.lastActivity, $0.enclave) < ($1.lastActivity, $1.enclave) }
        var orders = idleFirst.map {
            Order(enclave: $0.enclave, pages: thresholdExcess(pooledPages: $0.pooledPages, epcPages: $0.epcPages))
        }
        var deficit = pressureDeficit
        deficit -= Swift.min(deficit, orders.reduce(0) { $0 + $1.pages })
        for (index, enclave) in idleFirst.enumerated() where deficit > 0 {
            let more = Swift.min(enclave.pooledPages - orders[index].pages, deficit)
            orders[index].pages += more
            deficit -= more
        }
        return orders.filter { $0.pages > 0 }
    }

    /// `plan` from what the device tells of the EPC. `leavingPages` are already on their way out
    /// (trims and removals queued) and not counted again, or each evaluation would reclaim them
    /// anew. With the EPC's size unknown only the per-enclave threshold applies.
    public mutating func plan(enclaves: [EnclavePool], occupancy: EPCOccupancy, leavingPages: UInt64) -> [Order] {
        guard occupancy.totalPages > 0 else {
            underPressure = false
            return orders(enclaves, pressureDeficit: 0)
        }
        let used = occupancy.effectiveUsedPages
        return plan(enclaves: enclaves, machineUsedPages: used - Swift.min(used, leavingPages), machineTotalPages: occupancy.totalPages)
    }

    /// `plan`, then the ranges: `reclaim` queues the reclaim of that many of the enclave's oldest
    /// pooled pages and returns them (for example by running `EnclaveLedger.reclaimOldestPooled`
    /// on the enclave's queue).
    public mutating func selectVictims(
        enclaves: [EnclavePool], machineUsedPages: UInt64, machineTotalPages: UInt64,
        reclaim: (EnclaveID, UInt64) -> [PageRange]
    ) -> [Victim] {
        plan(enclaves: enclaves, machineUsedPages: machineUsedPages, machineTotalPages: machineTotalPages)
            .map { Victim(enclave: $0.enclave, ranges: reclaim($0.enclave, $0.pages)) }
            .filter { !$0.ranges.isEmpty }
    }

    static func percent(_ percent: UInt64, of pages: UInt64) -> UInt64 {
        UInt64(clamping: UInt128(pages) * UInt128(percent) / 100)
    }
}
