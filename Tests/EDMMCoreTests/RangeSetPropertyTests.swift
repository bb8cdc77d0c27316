import EDMMCore
import PropertyBased
import Testing

/// One update of a random history of a RangeSet.
struct SetUpdate: CustomStringConvertible {
    var remove: Bool
    var range: PageRange
    var description: String { (remove ? "remove " : "insert ") + range.description }
}

let setUpdates = zip(Gen.bool, Gen.uint64(in: 0...71), Gen.uint64(in: 1...16))
    .map { SetUpdate(remove: $0.0, range: PageRange(first: $0.1, count: $0.2)) }
    .array(of: 0...60)

/// Replays the history on a RangeSet and on a plain set of page numbers.
func replay(_ updates: [SetUpdate]) -> (RangeSet, Set<UInt64>) {
    var set = RangeSet()
    var pages = Set<UInt64>()
    for update in updates {
        if update.remove {
            set.remove(update.range)
            pages.subtract(update.range.first..<update.range.end)
        } else {
            set.insert(update.range)
            pages.formUnion(update.range.first..<update.range.end)
        }
    }
    return (set, pages)
}

/// Maximal runs of consecutive page numbers, clipped to `window`.
func runs(of pages: Set<UInt64>, in window: PageRange) -> [PageRange] {
    var result: [PageRange] = []
    for page in window.first..<window.end where pages.contains(page) {
        if let last = result.last, last.end == page {
            result[result.count - 1] = PageRange(first: last.first, end: page + 1)
        } else {
            result.append(PageRange(first: page, count: 1))
        }
    }
    return result
}

@Suite struct RangeSetProperties {
    @Test func rangesAreTheMaximalRunsOfTheReferencePageSet() async {
        await propertyCheck(count: 300, input: setUpdates) { updates in
            let (set, pages) = replay(updates)
            #expect(throws: Never.self) { try set.checkInvariants() }
            #expect(Array(set) == runs(of: pages, in: PageRange(first: 0, count: 128)))
            #expect(set.pageCount == UInt64(pages.count))
            #expect(set.isEmpty == pages.isEmpty)
            for page in 0..<UInt64(128) {
                #expect(set.contains(page) == pages.contains(page))
            }
        }
    }

    @Test func intersectionContainsAndOverlapsMatchTheReferencePageSet() async {
        await propertyCheck(count: 300, input: setUpdates, windows) { updates, window in
            let (set, pages) = replay(updates)
            let inside = (window.first..<window.end).filter { pages.contains($0) }
            #expect(set.intersection(window) == runs(of: pages, in: window))
            #expect(set.contains(window) == (inside.count == Int(window.count)))
            #expect(set.overlaps(window) == !inside.isEmpty)
        }
    }

    @Test func gapAndRangeSearchesMatchTheReferencePageSet() async {
        await propertyCheck(count: 300, input: setUpdates, windows, Gen.uint64(in: 1...10)) { updates, window, pages in
            let (set, members) = replay(updates)
            let complement = Set(window.first..<window.end).subtracting(members)
            #expect(
                set.firstGap(ofAtLeast: pages, in: window)
                    == runs(of: complement, in: window).first { $0.count >= pages })
            #expect(
                set.firstRange(ofAtLeast: pages, in: window)
                    == runs(of: members, in: window).first { $0.count >= pages })
            #expect(set.lowest == runs(of: members, in: PageRange(first: 0, count: 128)).first)
        }
    }
}

@Suite struct RangeSetBehaviour {
    @Test func insertingAdjacentRangesCoalescesThemIntoOne() {
        var set = RangeSet()
        set.insert(PageRange(first: 10, count: 5))
        set.insert(PageRange(first: 20, count: 5))
        set.insert(PageRange(first: 15, count: 5))
        #expect(Array(set) == [PageRange(first: 10, count: 15)])
    }

    @Test func removingTheMiddleOfARangeSplitsIt() {
        var set = RangeSet([PageRange(first: 0, count: 100)])
        set.remove(PageRange(first: 40, count: 10))
        #expect(Array(set) == [PageRange(first: 0, count: 40), PageRange(first: 50, count: 50)])
        #expect(set.pageCount == 90)
    }

    @Test func gapSearchReachesTheTopOfTheAddressSpace() {
        let set = RangeSet([PageRange(first: 0, count: 10)])
        let window = PageRange(first: 0, end: UInt64.max)
        #expect(set.firstGap(ofAtLeast: 1 << 40, in: window) == PageRange(first: 10, end: UInt64.max))
    }

    @Test func aHundredThousandRangesStayCanonical() throws {
        var set = RangeSet()
        for index in 0..<UInt64(100_000) { set.insert(PageRange(first: index * 3, count: 2)) }
        #expect(set.rangeCount == 100_000)
        for index in stride(from: UInt64(0), to: 100_000, by: 2) {
            set.insert(PageRange(first: index * 3 + 2, count: 1))
        }
        #expect(set.rangeCount == 50_000)
        try set.checkInvariants()
        #expect(set.firstGap(ofAtLeast: 1, in: PageRange(first: 0, count: 300_000)) == PageRange(first: 5, count: 1))
    }
}
