import CEDMMShims
import EDMMCore

/// A broken EPCM or EPC invariant, described.
public struct InvariantViolation: Sendable, Equatable, CustomStringConvertible {
    public let description: String
}

extension SimulatedMachine {
    /// Checks the machine's EPC bookkeeping and, for each enclave given, its page table against
    /// it, under the locks (each enclave's, then the machine's), and returns every violation:
    ///
    /// - every present page is in exactly one legal EPCM state, and the kernel's type agrees;
    /// - the machine's used count equals the occupied EPC pages, the sum of per-enclave resident
    ///   counts, and (per enclave given) the pages that are resident;
    /// - never two EPC pages hold one enclave address, and no EPC page holds a hole;
    /// - the free list and the used pages account for every slot handed out.
    public func checkInvariants(enclaves: [SimulatedEnclave] = []) -> [InvariantViolation] {
        var seen = Set<UInt32>()
        let distinct = enclaves.filter { $0.machine === self && seen.insert($0.index).inserted }
            .sorted { $0.index < $1.index }
        var violations: [InvariantViolation] = []
        withEnclaveLocks(distinct[...]) {
            _ = locked {
                violations = machineViolations()
                for enclave in distinct { violations += enclave.violationsLocked() }
            }
        }
        return violations
    }

    private func withEnclaveLocks(_ enclaves: ArraySlice<SimulatedEnclave>, _ body: () -> Void) {
        guard let first = enclaves.first else { return body() }
        _ = try? first.region.withLock { withEnclaveLocks(enclaves.dropFirst(), body) }
    }

    /// Machine lock held.
    private func machineViolations() -> [InvariantViolation] {
        var out: [InvariantViolation] = []
        let highWater = Int(min(header.pointee.high_water, epcPages))
        var occupied: UInt64 = 0
        var perEnclave = [Int: UInt64]()
        var holders = [UInt64: Int]()  // (owner << 40 | page) -> slot
        for i in 0..<highWater {
            let owner = slotOwner(slots[i].tag)
            guard owner != 0 else { continue }
            occupied += 1
            perEnclave[owner, default: 0] += 1
            if owner > Int(enclaveCapacity) || records[owner - 1].state != EDMM_ENCLAVE_ALIVE {
                out.append(.init(description: "EPC page \(i) is held by enclave \(owner - 1), which is not alive"))
            }
            let key = UInt64(owner) << 40 | slots[i].page
            if let other = holders.updateValue(i, forKey: key) {
                out.append(
                    .init(description: "EPC pages \(other) and \(i) both hold page \(slots[i].page) of enclave \(owner - 1)"))
            }
        }
        if occupied != header.pointee.used_pages {
            out.append(.init(description: "used count \(header.pointee.used_pages) but \(occupied) EPC pages are occupied"))
        }
        for i in 0..<Int(enclaveCapacity) where records[i].state == EDMM_ENCLAVE_ALIVE || perEnclave[i + 1] != nil {
            let counted = perEnclave[i + 1] ?? 0
            if records[i].resident_pages != counted {
                out.append(
                    .init(description: "enclave \(i) records \(records[i].resident_pages) resident pages, holds \(counted)"))
            }
        }
        var free: UInt64 = 0
        var cursor = header.pointee.free_head
        while cursor != 0, cursor <= UInt64(highWater), free <= UInt64(highWater) {
            if slotOwner(slots[Int(cursor - 1)].tag) != 0 {
                out.append(.init(description: "EPC page \(cursor - 1) is on the free list but occupied"))
                break
            }
            free += 1
            cursor = slots[Int(cursor - 1)].page
        }
        if free + occupied != UInt64(highWater) {
            out.append(.init(description: "\(free) free + \(occupied) used EPC pages, but \(highWater) were handed out"))
        }
        return out
    }
}

extension SimulatedEnclave {
    /// Enclave lock and machine lock held.
    func violationsLocked() -> [InvariantViolation] {
        var out: [InvariantViolation] = []
        var present: UInt64 = 0
        var resident: UInt64 = 0
        region.forEachAllocatedEntry(from: 0, to: region.pageCount) { page, e in
            let w = region.word(e)
            guard w.present else { return }
            present += 1
            let offset = "page 0x\(String(page << Page.shift, radix: 16))"
            if w.state == .invalid {
                out.append(.init(description: "enclave \(index) \(offset): no legal EPCM state (word 0x\(String(w.word, radix: 16)))"))
            }
            if w.kernelType != w.epcmType {
                out.append(.init(description: "enclave \(index) \(offset): kernel type \(w.kernelType) but EPCM.PT \(w.epcmType)"))
            }
            if isResident(e) {
                resident += 1
                let slot = Int(e.pointee.f.slot) - 1
                if machine.slots[slot].page != page {
                    out.append(.init(description: "enclave \(index) \(offset): its EPC page holds page \(machine.slots[slot].page)"))
                }
            }
        }
        if present != region.header.pointee.present_pages {
            out.append(.init(description: "enclave \(index): \(present) pages present, header says \(region.header.pointee.present_pages)"))
        }
        let owner = UInt64(index) + 1
        for slot in 0..<Int(min(machine.header.pointee.high_water, machine.epcPages))
        where machine.slots[slot].tag & 0xFFFF_FFFF == owner {
            let page = machine.slots[slot].page
            let e = region.entry(page, create: false)
            if e == nil || !region.word(e!).present || Int(e!.pointee.f.slot) != slot + 1 {
                out.append(.init(description: "enclave \(index): EPC page \(slot) holds page \(page), which is not there"))
            }
        }
        let recorded = machine.record(index).pointee.resident_pages
        if resident != recorded {
            out.append(.init(description: "enclave \(index): \(resident) pages resident, machine records \(recorded)"))
        }
        return out
    }
}
