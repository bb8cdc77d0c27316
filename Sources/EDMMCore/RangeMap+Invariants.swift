extension RangeMap {
    /// Verifies the tree: ranges ordered, disjoint and coalesced, heap order of priorities, every
    /// subtree summary exact, and node storage fully accounted for. O(n).
    public func checkInvariants() throws(InvariantViolation) {
        var previous: Node?
        var visited = 0
        try check(root, parentPriority: .max, previous: &previous, visited: &visited)
        guard visited == rangeCount else {
            throw InvariantViolation("tree holds \(visited) ranges, rangeCount says \(rangeCount)")
        }
        var free = 0
        var index = freeList
        while index != Self.null, free <= nodes.count {
            free += 1
            index = nodes[index].left
        }
        guard free + visited == nodes.count else {
            throw InvariantViolation("\(nodes.count) nodes stored, \(visited) live and \(free) free")
        }
    }

    private func check(_ index: NodeIndex, parentPriority: UInt64, previous: inout Node?, visited: inout Int)
        throws(InvariantViolation)
    {
        guard index != Self.null else { return }
        let node = nodes[index]
        guard node.first < node.end else { throw InvariantViolation("empty range at node \(index)") }
        guard node.priority <= parentPriority else { throw InvariantViolation("heap order broken at \(node.first)") }
        try check(node.left, parentPriority: node.priority, previous: &previous, visited: &visited)
        if let before = previous {
            guard before.end <= node.first else {
                throw InvariantViolation(
                    "ranges [\(before.first), \(before.end)) and [\(node.first), \(node.end)) overlap or are out of order"
                )
            }
            guard before.end < node.first || before.value != node.value else {
                throw InvariantViolation("adjacent equal ranges at page \(node.first) are not coalesced")
            }
        }
        previous = node
        visited += 1
        try check(node.right, parentPriority: node.priority, previous: &previous, visited: &visited)

        let left = node.left == Self.null ? nil : nodes[node.left]
        let right = node.right == Self.null ? nil : nodes[node.right]
        let gaps = [
            left.map { $0.maxGap }, left.map { node.first - $0.maxEnd }, right.map { $0.maxGap },
            right.map { $0.minFirst - node.end },
        ]
        let summary = (
            minFirst: left?.minFirst ?? node.first, maxEnd: right?.maxEnd ?? node.end,
            maxGap: gaps.compactMap { $0 }.max() ?? 0,
            maxLength: [node.end - node.first, left?.maxLength ?? 0, right?.maxLength ?? 0].max() ?? 0,
            minRank: [node.value.rank, left?.minRank ?? .max, right?.minRank ?? .max].min() ?? .max,
            pages: node.end - node.first + (left?.pages ?? 0) + (right?.pages ?? 0)
        )
        guard summary.minFirst == node.minFirst, summary.maxEnd == node.maxEnd, summary.maxGap == node.maxGap,
            summary.maxLength == node.maxLength, summary.minRank == node.minRank, summary.pages == node.pages
        else { throw InvariantViolation("stale subtree summary at page \(node.first)") }
    }
}
