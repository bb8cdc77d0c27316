import CEDMMShims
import EDMMCore

/// Walks over the pages of an enclave that exist, at a cost in proportion to its page table,
/// never to the address range asked about: a 16 TiB ELRANGE has 2^32 pages, and asking for each
/// costs about a minute of CPU even when none exists.
extension SimulatedEnclave {
    /// How a walk went.
    public struct PageTableWalk: Equatable, Sendable {
        /// Page-table entries read: 512 per leaf block (2 MiB of ELRANGE) the ranges touch and
        /// the table has, fewer at the ends of a range.
        public var entriesVisited: UInt64 = 0
        /// Why the walk ended before the last range: nil when it covered them all.
        public var stopped: Stop?

        public enum Stop: Equatable, Sendable {
            /// The visitor asked to stop.
            case byVisitor
            /// The next leaf block would have taken the walk past its entry budget, to `wanted`
            /// entries (at least: later blocks are not counted).
            case budget(wanted: UInt64)
        }
    }

    /// Calls `visit` with the index and state of every present page (an EPCM-valid page, the
    /// kernel's xarray entry) in `ranges`, in page order; `visit` returns false to stop. Only leaf
    /// blocks of the page table that exist are read, each under the enclave lock; finding them
    /// takes one look per block in the ranges' span or one pass over the blocks in use, whichever
    /// is smaller. At most `maxEntries` entries are read.
    ///
    /// `ranges` must be sorted and disjoint (page indices relative to the base).
    public func forEachPresentPage(
        in ranges: [PageRange], maxEntries: UInt64, _ visit: (UInt64, PageInfo) -> Bool
    ) -> PageTableWalk {
        let shift = UInt64(EDMM_LEAF_SHIFT)
        var walk = PageTableWalk()
        var next = 0  // the first range that may reach into the current leaf
        for leaf in allocatedLeaves(in: ranges) {
            let leafFirst = leaf.index << shift
            let leafEnd = min((leaf.index + 1) << shift, region.pageCount)
            while next < ranges.count, ranges[next].end <= leafFirst { next += 1 }
            var r = next
            while r < ranges.count, ranges[r].first < leafEnd {
                let lo = max(ranges[r].first, leafFirst)
                let hi = min(ranges[r].end, leafEnd)
                r += 1
                guard walk.entriesVisited + (hi - lo) <= maxEntries else {
                    walk.stopped = .budget(wanted: walk.entriesVisited + (hi - lo))
                    return walk
                }
                walk.entriesVisited += hi - lo
                for (page, info) in presentPages(of: leaf, from: lo, to: hi) where !visit(page, info) {
                    walk.stopped = .byVisitor
                    return walk
                }
            }
        }
        return walk
    }

    /// The leaf blocks in use that cover part of `ranges`, in page order. The directory and the
    /// block owners are client-writable memory: every index is checked against the layout.
    private func allocatedLeaves(in ranges: [PageRange]) -> [(index: UInt64, block: UInt32)] {
        let shift = UInt64(EDMM_LEAF_SHIFT)
        let leafRanges = ranges.compactMap { range -> Range<UInt64>? in
            let end = min(range.end, region.pageCount)
            return range.first < end ? (range.first >> shift)..<((end - 1) >> shift + 1) : nil
        }
        let span = leafRanges.reduce(UInt64(0)) { $0 &+ UInt64($1.count) }
        let used = min(edmm_load64(&region.header.pointee.pool_used), region.layout.poolBlocks)
        var leaves: [(index: UInt64, block: UInt32)] = []
        if span <= used {
            for leafRange in leafRanges {
                for leaf in leafRange where leaves.last?.index != leaf {
                    let block = edmm_load32(region.directory + Int(leaf))
                    if block >= 1, UInt64(block) <= used { leaves.append((leaf, block)) }
                }
            }
            return leaves
        }
        // Fewer blocks in use than the ranges span: one pass over the blocks, then a merge.
        var inUse: [(index: UInt64, block: UInt32)] = []
        for b in 0..<Int(used) {
            let leaf = UInt64(edmm_load32(region.blockOwners + b))
            if leaf < region.layout.directoryEntries, edmm_load32(region.directory + Int(leaf)) == UInt32(b + 1) {
                inUse.append((leaf, UInt32(b + 1)))
            }
        }
        inUse.sort { $0.index < $1.index }
        var r = 0
        for leaf in inUse {
            while r < leafRanges.count, leafRanges[r].upperBound <= leaf.index { r += 1 }
            guard r < leafRanges.count else { break }
            if leafRanges[r].contains(leaf.index) { leaves.append(leaf) }
        }
        return leaves
    }

    /// The present pages of `[lo, hi)` in one leaf block, read under the enclave lock (nothing if
    /// the block no longer backs that leaf).
    private func presentPages(of leaf: (index: UInt64, block: UInt32), from lo: UInt64, to hi: UInt64) -> [(UInt64, PageInfo)] {
        (try? region.withLock { () -> [(UInt64, PageInfo)] in
            guard region.directory[Int(leaf.index)] == leaf.block else { return [] }
            var present: [(UInt64, PageInfo)] = []
            for page in lo..<hi where region.peek(page).present { present.append((page, info(page))) }
            return present
        }) ?? []
    }
}
