/// Values a `RangeMap` stores.
public protocol RangeMapValue: Equatable, Sendable {
    /// Orders ranges for `RangeMap.lowestRanked()` (smallest rank first), for example the time a
    /// pooled range was freed. Values without an order keep the default, `UInt64.max`.
    var rank: UInt64 { get }
}

extension RangeMapValue {
    public var rank: UInt64 { .max }
}

/// An ordered map from disjoint page ranges to values. Adjacent ranges with equal values are
/// always coalesced into one, so the map is canonical: two maps holding the same value for the
/// same pages have the same entries.
///
/// Updates, point look-ups and the gap/length/rank searches cost expected O(log n) for n stored
/// ranges; queries that return ranges add the size of their output. The tree is a treap whose
/// priorities come from `seed`: a daemon that seeds each map randomly keeps clients from shaping
/// the tree.
///
/// A value type without internal locking: the enclave queue that owns it confines it.
public struct RangeMap<Value: RangeMapValue>: Sendable {
    public struct Entry: Equatable, Sendable, CustomStringConvertible {
        public var range: PageRange
        public var value: Value
        public init(range: PageRange, value: Value) {
            self.range = range
            self.value = value
        }
        public var description: String { "\(range)=\(value)" }
    }

    var nodes: [Node] = []
    var root: NodeIndex = RangeMap.null
    var freeList: NodeIndex = RangeMap.null
    /// Cheap, well-mixed treap priorities from a per-map seed.
    var priorities: SplitMix64
    /// Number of stored (maximal) ranges.
    public internal(set) var rangeCount = 0

    public init(seed: UInt64 = 0x5EED_ED33_0000_0001) {
        priorities = SplitMix64(seed: seed)
    }

    public var isEmpty: Bool { root == Self.null }

    /// Number of pages covered by all ranges.
    public var pageCount: UInt64 { root == Self.null ? 0 : nodes[root].pages }

    // MARK: Updates

    /// Maps every page of `range` to `value`, replacing what was there and coalescing with equal
    /// neighbours.
    public mutating func assign(_ value: Value, to range: PageRange) {
        let (lower, rest) = split(root, at: range.first)
        let (middle, upper) = split(rest, at: range.end)
        freeSubtree(middle)
        var below = lower
        var above = upper
        var first = range.first
        var end = range.end
        let last = highestNode(below)
        if last != Self.null, nodes[last].end == first, nodes[last].value == value {
            let detached = detachLast(below)
            below = detached.rest
            first = nodes[detached.last].first
            freeNode(detached.last)
        }
        let next = lowestNode(above)
        if next != Self.null, nodes[next].first == end, nodes[next].value == value {
            let detached = detachFirst(above)
            above = detached.rest
            end = nodes[detached.first].end
            freeNode(detached.first)
        }
        let node = makeNode(first: first, end: end, value: value)
        root = merge(merge(below, node), above)
    }

    /// Unmaps every page of `range`, splitting ranges that straddle its bounds.
    public mutating func remove(_ range: PageRange) {
        let (below, rest) = split(root, at: range.first)
        let (middle, above) = split(rest, at: range.end)
        freeSubtree(middle)
        root = merge(below, above)
    }

    public mutating func removeAll() {
        self = RangeMap(seed: priorities.state)
    }

    // MARK: Point queries

    /// The entry whose range contains `page`.
    public func entry(containing page: UInt64) -> Entry? {
        var index = root
        while index != Self.null {
            if page < nodes[index].first {
                index = nodes[index].left
            } else if page >= nodes[index].end {
                index = nodes[index].right
            } else {
                return entry(index)
            }
        }
        return nil
    }

    public subscript(page: UInt64) -> Value? { entry(containing: page)?.value }

    public func contains(_ page: UInt64) -> Bool { entry(containing: page) != nil }

    /// The lowest entry starting at or after `page`.
    public func entry(startingAtOrAfter page: UInt64) -> Entry? {
        let index = lowerBound(page)
        return index == Self.null ? nil : entry(index)
    }

    /// The highest entry starting at or before `page`.
    public func entry(startingAtOrBefore page: UInt64) -> Entry? {
        var index = root
        var found = Self.null
        while index != Self.null {
            if nodes[index].first <= page {
                found = index
                index = nodes[index].right
            } else {
                index = nodes[index].left
            }
        }
        return found == Self.null ? nil : entry(found)
    }

    /// The lowest entry.
    public var first: Entry? { root == Self.null ? nil : entry(lowestNode(root)) }

    /// The highest entry.
    public var last: Entry? { root == Self.null ? nil : entry(highestNode(root)) }

    /// The entry with the smallest `rank`, the lowest one among equal ranks (the oldest range
    /// when ranks are times).
    public func lowestRanked() -> Entry? {
        var index = root
        while index != Self.null {
            let target = nodes[index].minRank
            let left = nodes[index].left
            if left != Self.null, nodes[left].minRank == target {
                index = left
            } else if nodes[index].value.rank == target {
                return entry(index)
            } else {
                index = nodes[index].right
            }
        }
        return nil
    }

    // MARK: Window queries

    /// The entries overlapping `window`, in order, clipped to it.
    public func entries(overlapping window: PageRange) -> [Entry] {
        var result: [Entry] = []
        collect(root, window, into: &result)
        return result
    }

    private func collect(_ index: NodeIndex, _ window: PageRange, into result: inout [Entry]) {
        guard index != Self.null, nodes[index].maxEnd > window.first, nodes[index].minFirst < window.end else {
            return
        }
        collect(nodes[index].left, window, into: &result)
        let range = PageRange(first: nodes[index].first, end: nodes[index].end)
        if let clipped = range.intersection(window) {
            result.append(Entry(range: clipped, value: nodes[index].value))
        }
        collect(nodes[index].right, window, into: &result)
    }

    /// True when some page of `window` is mapped.
    public func overlaps(_ window: PageRange) -> Bool {
        if contains(window.first) { return true }
        guard let next = entry(startingAtOrAfter: window.first) else { return false }
        return next.range.first < window.end
    }

    /// True when every page of `window` is mapped (to any values).
    public func covers(_ window: PageRange) -> Bool {
        firstGap(ofAtLeast: 1, in: window) == nil
    }

    /// The lowest run of at least `pages` unmapped pages inside `window`, returned whole (up to
    /// the next mapped page or the end of the window), or nil.
    public func firstGap(ofAtLeast pages: UInt64, in window: PageRange) -> PageRange? {
        guard pages > 0, pages <= window.count else { return nil }
        let gapStart: UInt64
        if let before = entry(startingAtOrBefore: window.first), before.range.end > window.first {
            // window.first is mapped: candidates are the gaps after `before` and later ranges.
            guard let start = firstGapStart(afterRangesFrom: before.range.first, ofAtLeast: pages) else { return nil }
            gapStart = start
        } else {
            let nextFirst = entry(startingAtOrAfter: window.first)?.range.first ?? .max
            if Swift.min(nextFirst, window.end) - window.first >= pages {
                return PageRange(first: window.first, end: Swift.min(nextFirst, window.end))
            }
            guard let start = firstGapStart(afterRangesFrom: nextFirst, ofAtLeast: pages) else { return nil }
            gapStart = start
        }
        guard gapStart < window.end else { return nil }
        let gapEnd = Swift.min(entry(startingAtOrAfter: gapStart)?.range.first ?? .max, window.end)
        return gapEnd - gapStart >= pages ? PageRange(first: gapStart, end: gapEnd) : nil
    }

    /// The start of the lowest gap of at least `pages` that follows a range starting at or after
    /// `key` (the gap after the last range is unbounded).
    private func firstGapStart(afterRangesFrom key: UInt64, ofAtLeast pages: UInt64) -> UInt64? {
        firstGapStart(root, key, pages, followedBy: .max)
    }

    /// `nextFirst` is the first page of the range that follows the subtree (`.max` if none).
    private func firstGapStart(_ index: NodeIndex, _ key: UInt64, _ pages: UInt64, followedBy nextFirst: UInt64)
        -> UInt64?
    {
        guard index != Self.null else { return nil }
        let node = nodes[index]
        if node.first < key {
            return firstGapStart(node.right, key, pages, followedBy: nextFirst)
        }
        if node.minFirst >= key, node.maxGap < pages, nextFirst - node.maxEnd < pages {
            return nil
        }
        if let start = firstGapStart(node.left, key, pages, followedBy: node.first) {
            return start
        }
        let after = node.right == Self.null ? nextFirst : nodes[node.right].minFirst
        if after - node.end >= pages { return node.end }
        return firstGapStart(node.right, key, pages, followedBy: nextFirst)
    }

    /// The lowest entry with at least `pages` pages inside `window`, clipped to the window.
    public func firstEntry(ofAtLeast pages: UInt64, in window: PageRange) -> Entry? {
        guard pages > 0, pages <= window.count else { return nil }
        if let containing = entry(containing: window.first),
            Swift.min(containing.range.end, window.end) - window.first >= pages
        {
            return Entry(
                range: PageRange(first: window.first, end: Swift.min(containing.range.end, window.end)),
                value: containing.value)
        }
        let candidate = firstNode(root, startingAtOrAfter: window.first, ofAtLeast: pages)
        guard candidate != Self.null, nodes[candidate].first < window.end else { return nil }
        let end = Swift.min(nodes[candidate].end, window.end)
        guard end - nodes[candidate].first >= pages else { return nil }
        return Entry(range: PageRange(first: nodes[candidate].first, end: end), value: nodes[candidate].value)
    }

    private func firstNode(_ index: NodeIndex, startingAtOrAfter key: UInt64, ofAtLeast pages: UInt64) -> NodeIndex {
        guard index != Self.null, nodes[index].maxLength >= pages else { return Self.null }
        let node = nodes[index]
        if node.first < key {
            return firstNode(node.right, startingAtOrAfter: key, ofAtLeast: pages)
        }
        let left = firstNode(node.left, startingAtOrAfter: key, ofAtLeast: pages)
        if left != Self.null { return left }
        if node.end - node.first >= pages { return index }
        return firstNode(node.right, startingAtOrAfter: key, ofAtLeast: pages)
    }

    private func lowerBound(_ page: UInt64) -> NodeIndex {
        var index = root
        var found = Self.null
        while index != Self.null {
            if nodes[index].first >= page {
                found = index
                index = nodes[index].left
            } else {
                index = nodes[index].right
            }
        }
        return found
    }
}

extension RangeMap: Sequence {
    public struct Iterator: IteratorProtocol {
        private let map: RangeMap
        private var stack: [NodeIndex] = []

        init(_ map: RangeMap) {
            self.map = map
            descend(from: map.root)
        }

        private mutating func descend(from start: NodeIndex) {
            var index = start
            while index != RangeMap.null {
                stack.append(index)
                index = map.nodes[index].left
            }
        }

        public mutating func next() -> Entry? {
            guard let index = stack.popLast() else { return nil }
            descend(from: map.nodes[index].right)
            return map.entry(index)
        }
    }

    public func makeIterator() -> Iterator { Iterator(self) }

    public var underestimatedCount: Int { rangeCount }
}

extension RangeMap: Equatable {
    /// Equal when both map the same pages to the same values (the seeds do not matter).
    public static func == (lhs: RangeMap, rhs: RangeMap) -> Bool {
        lhs.rangeCount == rhs.rangeCount && lhs.elementsEqual(rhs)
    }
}

extension RangeMap: CustomStringConvertible {
    public var description: String { "[" + map(\.description).joined(separator: ", ") + "]" }
}
