import EDMMCore

/// One process's view of an enclave: its VMAs over the enclave fd and the PTEs installed in
/// them. Like `mm` in Linux this is per process; everything else lives in shared memory.
///
/// A PTE remembers the page's `mapGen` when it was installed; the kernel "zaps" a page's PTEs
/// in every process by bumping `mapGen` (REG->TCS, REMOVE_PAGES), and eviction zaps them by
/// making the page non-resident, so a PTE is valid only while both still match.
struct AddressSpace {
    struct VMA: Equatable {
        var start: UInt64
        var end: UInt64
        var prot: PagePermissions
    }

    /// Sorted, non-overlapping.
    private(set) var vmas: [VMA] = []
    /// Enclave page index -> mapGen at installation.
    private var ptes: [UInt64: UInt32] = [:]

    func vma(containing address: UInt64) -> VMA? {
        var lo = 0
        var hi = vmas.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if vmas[mid].end <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo < vmas.count && vmas[lo].start <= address ? vmas[lo] : nil
    }

    /// True when `[start, end)` is covered by VMAs without gaps.
    func isFullyMapped(_ start: UInt64, _ end: UInt64) -> Bool {
        var cursor = start
        for v in vmas where v.end > cursor && v.start < end {
            if v.start > cursor { return false }
            cursor = v.end
            if cursor >= end { return true }
        }
        return cursor >= end
    }

    /// MAP_FIXED semantics: whatever was mapped in the range is replaced.
    mutating func map(_ start: UInt64, _ end: UInt64, prot: PagePermissions, base: UInt64) {
        unmap(start, end, base: base)
        let index = vmas.firstIndex { $0.start >= end } ?? vmas.count
        vmas.insert(VMA(start: start, end: end, prot: prot), at: index)
    }

    mutating func unmap(_ start: UInt64, _ end: UInt64, base: UInt64) {
        var kept: [VMA] = []
        for v in vmas {
            if v.end <= start || v.start >= end {
                kept.append(v)
                continue
            }
            if v.start < start { kept.append(VMA(start: v.start, end: start, prot: v.prot)) }
            if v.end > end { kept.append(VMA(start: end, end: v.end, prot: v.prot)) }
        }
        vmas = kept
        dropPTEs(start, end, base: base)
    }

    /// mprotect: PTE permissions follow the VMA, so only the VMAs change.
    mutating func protect(_ start: UInt64, _ end: UInt64, prot: PagePermissions) {
        var result: [VMA] = []
        for v in vmas {
            if v.end <= start || v.start >= end {
                result.append(v)
                continue
            }
            if v.start < start { result.append(VMA(start: v.start, end: start, prot: v.prot)) }
            result.append(VMA(start: max(v.start, start), end: min(v.end, end), prot: prot))
            if v.end > end { result.append(VMA(start: end, end: v.end, prot: v.prot)) }
        }
        vmas = result
    }

    func pte(_ page: UInt64) -> UInt32? { ptes[page] }
    mutating func installPTE(_ page: UInt64, mapGen: UInt32) { ptes[page] = mapGen }

    private mutating func dropPTEs(_ start: UInt64, _ end: UInt64, base: UInt64) {
        guard !ptes.isEmpty else { return }
        let first = start > base ? (start - base) >> 12 : 0
        let last = end > base ? (end - base + 4095) >> 12 : 0
        guard first < last else { return }
        if last - first < UInt64(ptes.count) {
            for p in first..<last { ptes[p] = nil }
        } else {
            ptes = ptes.filter { $0.key < first || $0.key >= last }
        }
    }
}
