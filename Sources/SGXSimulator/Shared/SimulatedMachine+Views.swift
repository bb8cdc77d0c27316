import CEDMMShims
import Glibc

/// What the machine shows without its lock (figures, the lock holder) and its injected faults.
extension SimulatedMachine {
    // MARK: Views

    /// The machine's figures, read without the lock, one atomic load each: a client that holds
    /// the lock (stopped in a debugger) cannot stall whoever looks, and the figures may be a
    /// moment apart. The used count is clamped to the EPC; the counters are as written.
    public var stats: Stats {
        var alive = 0
        var secs: UInt64 = 0
        var va: UInt64 = 0
        for i in 0..<Int(enclaveCapacity) where edmm_load32(&records[i].state) == EDMM_ENCLAVE_ALIVE {
            alive += 1
            if edmm_load32(&records[i].secs_slot) != 0 { secs += 1 }
            va &+= UInt64(edmm_load32(&records[i].va_pages))
        }
        return Stats(
            epcPages: epcPages, usedPages: min(edmm_load64(&header.pointee.used_pages), epcPages), secsPages: min(secs, epcPages),
            vaPages: min(va, epcPages), ewb: edmm_load64(&header.pointee.ewb), eldu: edmm_load64(&header.pointee.eldu),
            aliveEnclaves: alive, sweeps: edmm_load64(&header.pointee.sweeps),
            lockRecoveries: edmm_load64(&header.pointee.lock_recoveries))
    }

    /// Per-enclave figures kept in the machine region (the evictor does not touch enclave
    /// regions), read like `stats`: without the lock, each page count clamped to the EPC.
    func footprint(index: UInt32) -> (usage: EPCUsage, ewb: UInt64) {
        let r = record(index)
        let usage = EPCUsage(
            enclavePages: min(edmm_load64(&r.pointee.resident_pages), epcPages),
            secsPages: edmm_load32(&r.pointee.secs_slot) != 0 ? 1 : 0,
            vaPages: min(UInt64(edmm_load32(&r.pointee.va_pages)), epcPages))
        return (usage, edmm_load64(&r.pointee.ewb))
    }

    // MARK: Fault injection

    /// The faults every process of this machine injects now.
    public var faults: SimulatorFaults {
        var rates: [SimulatorFaults.Kind: Double] = [:]
        for kind in SimulatorFaults.Kind.allCases {
            rates[kind] = Double(edmm_fault_rate(faultTable, kind.slot)) / Double(SimulatorFaults.million)
        }
        return SimulatorFaults(seed: edmm_load64(&faultTable.pointee.seed), rates: rates)
    }

    /// Changes the faults for every process of this machine, and numbers their opportunities
    /// from 0 again (so a test can tell with `SimulatorFaults.injects(_:draw:)` which will fail).
    public func setFaults(_ faults: SimulatorFaults) {
        _ = locked {
            for kind in SimulatorFaults.Kind.allCases { edmm_fault_set_rate(faultTable, kind.slot, 0) }
            edmm_store64(&faultTable.pointee.seed, faults.seed)
            edmm_fault_reset_counts(faultTable)
            for kind in SimulatorFaults.Kind.allCases {
                edmm_fault_set_rate(faultTable, kind.slot, SimulatorFaults.partsPerMillion(faults.rate(kind)))
            }
        }
    }

    /// Opportunities and injected faults of each kind since the faults were last set.
    public var faultCounts: [SimulatorFaults.Kind: FaultCount] {
        return Dictionary(
            uniqueKeysWithValues: SimulatorFaults.Kind.allCases.map {
                ($0, FaultCount(opportunities: edmm_fault_draws(faultTable, $0.slot), injected: edmm_fault_injected(faultTable, $0.slot)))
            })
    }

    /// Whether this opportunity of `kind` fails (one relaxed load when the kind is off).
    @inline(__always) func injects(_ kind: SimulatorFaults.Kind) -> Bool {
        let ppm = edmm_fault_rate(faultTable, kind.slot)
        guard ppm != 0 else { return false }
        let draw = edmm_fault_take_draw(faultTable, kind.slot)
        guard SimulatorFaults.decide(seed: edmm_load64(&faultTable.pointee.seed), kind: kind.slot, draw: draw, partsPerMillion: ppm)
        else { return false }
        edmm_fault_note_injected(faultTable, kind.slot)
        return true
    }
}
