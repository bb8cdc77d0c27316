/// Turns counted events into modelled enclave time. Cycles per event; every default names its
/// source, or says it is an assumption (no published per-instruction figures exist for most
/// SGX2 leaves; see docs/simulator.md and edmm-peers-and-numbers.md §5).
public struct CostModel: Sendable, Equatable {
    public var cyclesPerSecond: Double
    public var cycles: [SimCounter: UInt64]

    public init(cyclesPerSecond: Double = 3.0e9, cycles: [SimCounter: UInt64] = CostModel.defaultCycles) {
        self.cyclesPerSecond = cyclesPerSecond
        self.cycles = cycles
    }

    public static let `default` = CostModel()

    /// The default cost of each counted event, in cycles.
    public static let defaultCycles: [SimCounter: UInt64] = Dictionary(
        uniqueKeysWithValues: defaultTable.map { ($0.counter, $0.cycles) })

    /// (event, cycles, source). Events not listed cost nothing (reads, writes, OCALL markers:
    /// an OCALL's EEXIT and EENTER are counted on their own).
    public static let defaultTable: [(counter: SimCounter, cycles: UInt64, source: String)] = [
        (.eenter, 10_000, "Gramine Documentation/performance.rst: EENTER/EEXIT ~8,000-12,000 cycles each (midpoint)"),
        (.eexit, 10_000, "Gramine Documentation/performance.rst: EENTER/EEXIT ~8,000-12,000 cycles each (midpoint)"),
        (.eresume, 10_000, "assumption: priced like EENTER (same entry path)"),
        (.aex, 10_000, "assumption: priced like EEXIT (state save plus exit)"),
        (.eadd, 21_000, "VXAPPS/sgx-benchmark: ~7 us per 4 KiB page for EADD+EEXTEND at ~3 GHz (derived)"),
        (.eaug, 6_000, "assumption: page zeroing plus EPCM update, no measurement (EEXTEND excluded)"),
        (.eaccept, 3_000, "assumption: no published figure"),
        (.eacceptcopy, 5_000, "assumption: EACCEPT plus a 4 KiB copy"),
        (.emodpe, 1_000, "assumption: EPCM update only, no TLB shootdown"),
        (.emodpr, 2_000, "assumption: no published figure"),
        (.emodt, 2_000, "assumption: no published figure"),
        (.etrack, 1_000, "assumption: no published figure"),
        (.ipis, 3_000, "assumption: IPI delivery plus the AEX it forces on a remote CPU, one per process that mapped the enclave"),
        (.eremove, 2_000, "assumption: no published figure"),
        (.ewb, 12_000, "assumption: encrypt and MAC 4 KiB plus EBLOCK/ETRACK share"),
        (.eldu, 12_000, "assumption: decrypt and verify 4 KiB"),
        (.driverFaults, 3_000, "assumption: kernel #PF entry/exit and the SGX fault handler"),
        (.ioctlModifyTypes, 2_000, "assumption: syscall entry/exit with mitigations"),
        (.ioctlRestrictPermissions, 2_000, "assumption: syscall entry/exit with mitigations"),
        (.ioctlRemovePages, 2_000, "assumption: syscall entry/exit with mitigations"),
        (.ioctlAddPages, 2_000, "assumption: syscall entry/exit with mitigations"),
    ]

    /// Modelled cycles for the events in `counters`. A fault the driver resolved inside the
    /// enclave (`resolvedFaults`) costs, besides its driver fault and its EAUG or ELDU (counted on
    /// their own), the AEX and the ERESUME around it, at their prices here.
    public func cycles(for counters: CounterSnapshot) -> UInt64 {
        let resumes = counters[.resolvedFaults] &* ((cycles[.aex] ?? 0) &+ (cycles[.eresume] ?? 0))
        return cycles.reduce(resumes) { $0 &+ counters[$1.key] &* $1.value }
    }

    /// Modelled seconds for the events in `counters`.
    public func seconds(for counters: CounterSnapshot) -> Double {
        Double(cycles(for: counters)) / cyclesPerSecond
    }
}
