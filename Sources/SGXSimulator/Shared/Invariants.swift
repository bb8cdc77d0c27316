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
    /// - the machine's used count equals the occupied EPC pages; each enclave's record counts its
    ///   enclave pages, VA pages and SECS in the EPC as they are, and (per enclave given) the
    ///   pages that are resident;
    /// - never two EPC pages hold one enclave address or SECS, and no EPC page holds a hole;
    /// - (per enclave given) its page count is its pages plus the SECS, and its VA pages have a
    ///   slot for each;
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
        var perEnclave = [Int: (pages: UInt64, va: UInt64, secs: [Int])]()
        var holders = [UInt64: Int]()  // (owner << 40 | page) -> slot
        for i in 0..<highWater {
            let owner = slotOwner(slots[i].tag)
            guard owner != 0 else { continue }
            occupied += 1
            if owner > Int(enclaveCapacity) || records[owner - 1].state != EDMM_ENCLAVE_ALIVE {
                out.append(.init(description: "EPC page \(i) is held by enclave \(owner - 1), which is not alive"))
            }
            switch content(ofOccupied: i) {
            case .va:
                perEnclave[owner, default: (0, 0, [])].va += 1
                continue
            case .secs:
                perEnclave[owner, default: (0, 0, [])].secs.append(i)
                continue
            case .enclavePage: perEnclave[owner, default: (0, 0, [])].pages += 1
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
            let held = perEnclave[i + 1] ?? (0, 0, [])
            let r = records[i]
            if r.resident_pages != held.pages {
                out.append(.init(description: "enclave \(i) records \(r.resident_pages) resident pages, holds \(held.pages)"))
            }
            if UInt64(r.va_pages) != held.va {
                out.append(.init(description: "enclave \(i) records \(r.va_pages) VA pages, holds \(held.va)"))
            }
            let recordedSECS = r.secs_slot == 0 ? [] : [Int(r.secs_slot) - 1]
            if recordedSECS != held.secs {
                out.append(.init(description: "enclave \(i) records its SECS at EPC page \(recordedSECS), it is at \(held.secs)"))
            }
            if r.state == EDMM_ENCLAVE_ALIVE, held.pages > 0, held.secs.isEmpty {
                out.append(.init(description: "enclave \(i) has \(held.pages) pages in the EPC without its SECS"))
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
        let record = machine.record(index).pointee
        if record.page_cnt != present + 1 {
            out.append(.init(description: "enclave \(index): page count \(record.page_cnt), but \(present) pages and the SECS"))
        }
        if UInt64(record.va_pages) * UInt64(EDMM_VA_SLOT_COUNT) < record.page_cnt {
            out.append(.init(description: "enclave \(index): \(record.va_pages) VA pages cannot hold \(record.page_cnt) version slots"))
        }
        for slot in 0..<Int(min(machine.header.pointee.high_water, machine.epcPages))
        where machine.slots[slot].tag & 0xFFFF_FFFF == owner && machine.content(ofOccupied: slot) == .enclavePage {
            let page = machine.slots[slot].page
            let e = region.entry(page, create: false)
            if e == nil || !region.word(e!).present || Int(e!.pointee.f.slot) != slot + 1 {
                out.append(.init(description: "enclave \(index): EPC page \(slot) holds page \(page), which is not there"))
            }
        }
        let recorded = record.resident_pages
        if resident != recorded {
            out.append(.init(description: "enclave \(index): \(resident) pages resident, machine records \(recorded)"))
        }
        return out
    }
}
