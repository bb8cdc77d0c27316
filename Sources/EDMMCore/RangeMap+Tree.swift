/// The balanced tree behind `RangeMap`: a treap keyed by each range's first page, stored in one
/// array (nodes refer to each other by index, freed nodes are reused), so that the whole map is a
/// plain value: copying it is copy-on-write and it needs no locking of its own.
///
/// Every node also carries a summary of its subtree (first page, end, largest internal gap,
/// longest range, smallest rank, total pages), which is what lets gap, length and rank queries
/// prune whole subtrees and stay O(log n).
extension RangeMap {
    typealias NodeIndex = Int
    static var null: NodeIndex { -1 }

    struct Node: Sendable {
        var first: UInt64
        var end: UInt64
        var value: Value
        var priority: UInt64
        var left: NodeIndex = RangeMap.null
        var right: NodeIndex = RangeMap.null
        // Summary of the subtree rooted here.
        var minFirst: UInt64
        var maxEnd: UInt64
        /// The largest gap between two consecutive ranges of the subtree (0 for a single range).
        var maxGap: UInt64 = 0
        var maxLength: UInt64
        var minRank: UInt64
        var pages: UInt64

        init(first: UInt64, end: UInt64, value: Value, priority: UInt64) {
            self.first = first
            self.end = end
            self.value = value
            self.priority = priority
            minFirst = first
            maxEnd = end
            maxLength = end - first
            minRank = value.rank
            pages = end - first
        }
    }

    // MARK: Node storage

    mutating func makeNode(first: UInt64, end: UInt64, value: Value, priority: UInt64? = nil) -> NodeIndex {
        let node = Node(first: first, end: end, value: value, priority: priority ?? priorities.next())
        rangeCount += 1
        if freeList != Self.null {
            let index = freeList
            freeList = nodes[index].left
            nodes[index] = node
            return index
        }
        nodes.append(node)
        return nodes.count - 1
    }

    mutating func freeNode(_ index: NodeIndex) {
        nodes[index].left = freeList
        nodes[index].right = Self.null
        freeList = index
        rangeCount -= 1
    }

    /// Frees every node of a detached subtree; O(size of the subtree).
    mutating func freeSubtree(_ subtree: NodeIndex) {
        guard subtree != Self.null else { return }
        var stack = [subtree]
        while let index = stack.popLast() {
            if nodes[index].left != Self.null { stack.append(nodes[index].left) }
            if nodes[index].right != Self.null { stack.append(nodes[index].right) }
            freeNode(index)
        }
    }

    // MARK: Summaries

    /// Recomputes the summary of `index` from its own range and its children's summaries (the
    /// hottest code of every update, hence the unchecked buffer).
    mutating func updateSummary(_ index: NodeIndex) {
        nodes.withUnsafeMutableBufferPointer { nodes in
            let left = nodes[index].left
            let right = nodes[index].right
            let first = nodes[index].first
            let end = nodes[index].end
            var minFirst = first
            var maxEnd = end
            var maxGap: UInt64 = 0
            var maxLength = end - first
            var minRank = nodes[index].value.rank
            var pages = maxLength
            if left != Self.null {
                minFirst = nodes[left].minFirst
                maxGap = Swift.max(nodes[left].maxGap, first - nodes[left].maxEnd)
                maxLength = Swift.max(maxLength, nodes[left].maxLength)
                minRank = Swift.min(minRank, nodes[left].minRank)
                pages += nodes[left].pages
            }
            if right != Self.null {
                maxEnd = nodes[right].maxEnd
                maxGap = Swift.max(maxGap, nodes[right].maxGap, nodes[right].minFirst - end)
                maxLength = Swift.max(maxLength, nodes[right].maxLength)
                minRank = Swift.min(minRank, nodes[right].minRank)
                pages += nodes[right].pages
            }
            nodes[index].minFirst = minFirst
            nodes[index].maxEnd = maxEnd
            nodes[index].maxGap = maxGap
            nodes[index].maxLength = maxLength
            nodes[index].minRank = minRank
            nodes[index].pages = pages
        }
    }

    // MARK: Split and merge

    /// Splits `subtree` into the pages below `key` and the pages at or above it, cutting the one
    /// range that may straddle `key` in two.
    mutating func split(_ subtree: NodeIndex, at key: UInt64) -> (below: NodeIndex, atOrAbove: NodeIndex) {
        guard subtree != Self.null else { return (Self.null, Self.null) }
        if nodes[subtree].end <= key {
            let (below, above) = split(nodes[subtree].right, at: key)
            nodes[subtree].right = below
            updateSummary(subtree)
            return (subtree, above)
        }
        if nodes[subtree].first >= key {
            let (below, above) = split(nodes[subtree].left, at: key)
            nodes[subtree].left = above
            updateSummary(subtree)
            return (below, subtree)
        }
        // The tail inherits the cut node's priority, so that it can take that node's place in the
        // heap wherever the caller attaches the upper half.
        let tail = makeNode(
            first: key, end: nodes[subtree].end, value: nodes[subtree].value, priority: nodes[subtree].priority)
        nodes[subtree].end = key
        let right = nodes[subtree].right
        nodes[subtree].right = Self.null
        updateSummary(subtree)
        return (subtree, merge(tail, right))
    }

    /// Joins two subtrees where every range of `lower` precedes every range of `upper`.
    mutating func merge(_ lower: NodeIndex, _ upper: NodeIndex) -> NodeIndex {
        if lower == Self.null { return upper }
        if upper == Self.null { return lower }
        if nodes[lower].priority > nodes[upper].priority {
            let right = merge(nodes[lower].right, upper)
            nodes[lower].right = right
            updateSummary(lower)
            return lower
        } else {
            let left = merge(lower, nodes[upper].left)
            nodes[upper].left = left
            updateSummary(upper)
            return upper
        }
    }

    /// Detaches the highest range of a non-empty subtree.
    mutating func detachLast(_ subtree: NodeIndex) -> (rest: NodeIndex, last: NodeIndex) {
        let right = nodes[subtree].right
        if right == Self.null {
            let rest = nodes[subtree].left
            nodes[subtree].left = Self.null
            updateSummary(subtree)
            return (rest, subtree)
        }
        let (rest, last) = detachLast(right)
        nodes[subtree].right = rest
        updateSummary(subtree)
        return (subtree, last)
    }

    /// Detaches the lowest range of a non-empty subtree.
    mutating func detachFirst(_ subtree: NodeIndex) -> (first: NodeIndex, rest: NodeIndex) {
        let left = nodes[subtree].left
        if left == Self.null {
            let rest = nodes[subtree].right
            nodes[subtree].right = Self.null
            updateSummary(subtree)
            return (subtree, rest)
        }
        let (first, rest) = detachFirst(left)
        nodes[subtree].left = rest
        updateSummary(subtree)
        return (first, subtree)
    }

    func lowestNode(_ subtree: NodeIndex) -> NodeIndex {
        var index = subtree
        while index != Self.null, nodes[index].left != Self.null { index = nodes[index].left }
        return index
    }

    func highestNode(_ subtree: NodeIndex) -> NodeIndex {
        var index = subtree
        while index != Self.null, nodes[index].right != Self.null { index = nodes[index].right }
        return index
    }

    func entry(_ index: NodeIndex) -> Entry {
        Entry(range: PageRange(first: nodes[index].first, end: nodes[index].end), value: nodes[index].value)
    }
}
