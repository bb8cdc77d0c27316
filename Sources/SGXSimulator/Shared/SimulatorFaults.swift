/// Transient failures the simulated driver and CPU inject on purpose: the ones the Linux SGX
/// driver and SGX2 hardware produce under load or races, which the simulator otherwise never
/// does (its eviction is synchronous, and `encl->lock` stands in for the EPCM's interlocks).
///
/// Stored in the machine region, so every process sharing a simulated EPC (the daemon and every
/// enclave host) injects the same faults at the same rates. Each opportunity of a kind takes the
/// next number from that kind's counter in the machine region; the seed and that number decide,
/// so one sequence of operations meets the same faults on every run.
public struct SimulatorFaults: Sendable, Equatable, CustomStringConvertible {
    /// Where a fault is injected, and what the caller sees (docs/simulator.md, "Fault injection").
    public enum Kind: String, CaseIterable, Sendable, CustomStringConvertible {
        /// `sgx_encl_load_page()` returns -EBUSY in the per-page loop of an SGX2 ioctl (the
        /// reclaimer is writing the page back, or it is evicted and no free EPC page is there to
        /// reload it into): EAGAIN, with `count` the bytes before that page.
        case loadBusy = "load-ebusy"
        /// `sgx_unmark_page_reclaimable()` fails because the reclaimer holds the page: EAGAIN from
        /// MODIFY_TYPES REG->TCS, EBUSY from REMOVE_PAGES, with `count` copied back.
        case reclaimerHoldsPage = "unmark-reclaimable"
        /// EAUG in the fault handler fails (nothing reclaimable in the EPC, or the thread lost the
        /// `xa_insert` race): SIGBUS, which the vDSO reports as a not-present #PF on the fresh page.
        case eaugFailure = "eaug-sigbus"
        /// EMODPR or EMODT finds the page in use by another SGX instruction (an EACCEPT racing it
        /// on the same page): SGX_EPC_PAGE_CONFLICT, the ioctl fails with EFAULT and `result` 7.
        case pageConflict = "epc-page-conflict"

        public var description: String { rawValue }

        /// Index in the machine region's tables (declaration order).
        var slot: UInt32 {
            switch self {
            case .loadBusy: 0
            case .reclaimerHoldsPage: 1
            case .eaugFailure: 2
            case .pageConflict: 3
            }
        }
    }

    /// Why a fault specification does not parse.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }

    public var seed: UInt64
    /// Chance that one opportunity of a kind fails, 0...1; a kind missing here never fails.
    public var rates: [Kind: Double]

    /// Nothing injected.
    public static let off = SimulatorFaults()

    public init(seed: UInt64 = 1, rates: [Kind: Double] = [:]) {
        self.seed = seed
        self.rates = rates.filter { $0.value > 0 }.mapValues { min($0, 1) }
    }

    /// Every kind at `rate`.
    public static func all(_ rate: Double, seed: UInt64 = 1) -> SimulatorFaults {
        SimulatorFaults(seed: seed, rates: Dictionary(uniqueKeysWithValues: Kind.allCases.map { ($0, rate) }))
    }

    public var isOff: Bool { rates.isEmpty }

    public func rate(_ kind: Kind) -> Double { rates[kind] ?? 0 }

    /// `load-ebusy=0.05,eaug-sigbus=0.01,seed=7` (what `init(parsing:)` reads), or `off`.
    public var description: String {
        guard !isOff else { return "off" }
        return (Kind.allCases.compactMap { kind in rates[kind].map { "\(kind)=\($0)" } } + ["seed=\(seed)"])
            .joined(separator: ",")
    }

    /// Reads `kind=rate,...[,seed=N]`, where kind is one of `Kind`'s names or `all` (every kind)
    /// and rate a number from 0 to 1; `off` or an empty string is nothing injected.
    public init(parsing text: String) throws(ParseError) {
        self.init()
        let trimmed = text.filter { !$0.isWhitespace }
        guard !trimmed.isEmpty, trimmed != "off" else { return }
        var rates: [Kind: Double] = [:]
        for item in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ParseError(message: "\"\(item)\" is not NAME=VALUE (e.g. eaug-sigbus=0.01)")
            }
            let name = String(parts[0])
            let value = String(parts[1])
            if name == "seed" {
                guard let seed = UInt64(value) else { throw ParseError(message: "seed \"\(value)\" is not a non-negative integer") }
                self.seed = seed
                continue
            }
            guard let rate = Double(value), rate >= 0, rate <= 1 else {
                throw ParseError(message: "\(name)=\(value): the rate must be a number from 0 to 1")
            }
            if name == "all" {
                for kind in Kind.allCases { rates[kind] = rate }
            } else if let kind = Kind(rawValue: name) {
                rates[kind] = rate
            } else {
                throw ParseError(
                    message: "unknown fault \"\(name)\"; the faults are \(Kind.allCases.map(\.rawValue).joined(separator: ", ")) and all")
            }
        }
        self.rates = rates.filter { $0.value > 0 }
    }

    /// Whether opportunity number `draw` of `kind` fails. Pure: the machine numbers the
    /// opportunities, so a test can tell in advance which ones will.
    public func injects(_ kind: Kind, draw: UInt64) -> Bool {
        Self.decide(seed: seed, kind: kind.slot, draw: draw, partsPerMillion: Self.partsPerMillion(rate(kind)))
    }

    static let million: UInt32 = 1_000_000

    static func partsPerMillion(_ rate: Double) -> UInt32 {
        UInt32((min(max(rate, 0), 1) * Double(million)).rounded())
    }

    static func decide(seed: UInt64, kind: UInt32, draw: UInt64, partsPerMillion ppm: UInt32) -> Bool {
        guard ppm != 0 else { return false }
        // splitmix64's finalizer over the seed, the kind and the draw number.
        var z = seed &+ (UInt64(kind) &+ 1) &* 0x9E37_79B9_7F4A_7C15 &+ draw &* 0xD1B5_4A32_D192_ED03
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z % UInt64(million) < UInt64(ppm)
    }
}

/// How often one kind of fault had its chance, and how often it was injected.
public struct FaultCount: Sendable, Equatable {
    public var opportunities: UInt64
    public var injected: UInt64

    public init(opportunities: UInt64, injected: UInt64) {
        self.opportunities = opportunities
        self.injected = injected
    }
}
