extension EnclaveLedger {
    /// Verifies the ledger against itself: the page map's tree invariants, every tracked page
    /// inside the managed range, counters equal to a recount, and the pool index equal to the
    /// pooled pages. O(n); for tests and the daemon's soak checks.
    public func checkInvariants() throws(InvariantViolation) {
        try pages.checkInvariants()
        var recount = PageCounts()
        var pooled = [RangeSet](repeating: RangeSet(), count: pool.count)
        for entry in pages {
            guard managedRange.contains(entry.range) else {
                throw InvariantViolation("\(entry) lies outside the managed range \(managedRange)")
            }
            recount.add(entry.range.count, entry.value)
            if case .pooled(let permissions, _) = entry.value { pooled[Int(permissions.rawValue)].insert(entry.range) }
        }
        guard recount == counts else { throw InvariantViolation("counters \(counts) differ from recount \(recount)") }
        for (index, expected) in pooled.enumerated() {
            try pool[index].checkInvariants()
            guard Array(pool[index]) == Array(expected) else {
                throw InvariantViolation("pool index for \(PagePermissions(rawValue: UInt8(index))) is stale")
            }
        }
    }
}
