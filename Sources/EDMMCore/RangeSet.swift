/// An ordered set of pages kept as disjoint, coalesced ranges, with expected O(log n) updates and
/// queries for n ranges (see `RangeMap`, which it is built on). A confined value type.
public struct RangeSet: Sendable, Equatable, Sequence, CustomStringConvertible {
    struct Member: RangeMapValue {}

    private var map: RangeMap<Member>

    public init(seed: UInt64 = 0x5EED_ED33_0000_0002) {
        map = RangeMap(seed: seed)
    }

    public init(_ ranges: some Sequence<PageRange>) {
        self.init()
        for range in ranges { insert(range) }
    }

    public var isEmpty: Bool { map.isEmpty }
    /// Number of maximal ranges.
    public var rangeCount: Int { map.rangeCount }
    public var pageCount: UInt64 { map.pageCount }

    public mutating func insert(_ range: PageRange) { map.assign(Member(), to: range) }
    public mutating func remove(_ range: PageRange) { map.remove(range) }
    public mutating func removeAll() { map.removeAll() }

    public func contains(_ page: UInt64) -> Bool { map.contains(page) }

    /// True when every page of `range` is in the set.
    public func contains(_ range: PageRange) -> Bool {
        guard let containing = map.entry(containing: range.first) else { return false }
        return containing.range.end >= range.end
    }

    /// True when some page of `range` is in the set.
    public func overlaps(_ range: PageRange) -> Bool { map.overlaps(range) }

    /// The maximal range containing `page`.
    public func range(containing page: UInt64) -> PageRange? { map.entry(containing: page)?.range }

    /// The set's ranges inside `window`, clipped to it.
    public func intersection(_ window: PageRange) -> [PageRange] {
        map.entries(overlapping: window).map(\.range)
    }

    /// The lowest run of at least `pages` pages absent from the set inside `window`, returned whole
    /// (clipped to the window).
    public func firstGap(ofAtLeast pages: UInt64, in window: PageRange) -> PageRange? {
        map.firstGap(ofAtLeast: pages, in: window)
    }

    /// The lowest range with at least `pages` pages inside `window`, clipped to it.
    public func firstRange(ofAtLeast pages: UInt64, in window: PageRange) -> PageRange? {
        map.firstEntry(ofAtLeast: pages, in: window)?.range
    }

    /// The lowest range.
    public var lowest: PageRange? { map.first?.range }
    /// The highest range.
    public var highest: PageRange? { map.last?.range }

    public struct Iterator: IteratorProtocol {
        var entries: RangeMap<Member>.Iterator
        public mutating func next() -> PageRange? { entries.next()?.range }
    }

    public func makeIterator() -> Iterator { Iterator(entries: map.makeIterator()) }

    public var underestimatedCount: Int { rangeCount }

    public func checkInvariants() throws(InvariantViolation) { try map.checkInvariants() }

    public var description: String { "{" + map { $0.description }.joined(separator: ", ") + "}" }
}
