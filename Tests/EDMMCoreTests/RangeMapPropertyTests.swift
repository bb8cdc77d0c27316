import EDMMCore
import PropertyBased
import Testing

/// A value with an order, so that `lowestRanked()` has something to find.
struct Tag: RangeMapValue, CustomStringConvertible {
    var number: Int
    var rank: UInt64 { UInt64(number) }
    var description: String { "#\(number)" }
}

/// One update of a random history: assign `Tag(value)` to a range, or remove the range.
struct MapUpdate: CustomStringConvertible {
    var remove: Bool
    var range: PageRange
    var value: Int
    var description: String { remove ? "remove \(range)" : "assign #\(value) to \(range)" }
}

let pageSpace = 96
let mapUpdates = zip(Gen.int(in: 0...3), Gen.uint64(in: 0...71), Gen.uint64(in: 1...16), Gen.int(in: 0...2))
    .map { MapUpdate(remove: $0.0 == 0, range: PageRange(first: $0.1, count: $0.2), value: $0.3) }
    .array(of: 0...60)
let windows = zip(Gen.uint64(in: 0...90), Gen.uint64(in: 1...40)).map { PageRange(first: $0.0, count: $0.1) }

func replay(_ updates: [MapUpdate], seed: UInt64 = 1) -> (RangeMap<Tag>, NaivePages<Tag>) {
    var map = RangeMap<Tag>(seed: seed)
    var model = NaivePages<Tag>(size: pageSpace)
    for update in updates {
        if update.remove {
            map.remove(update.range)
            model.assign(nil, to: update.range)
        } else {
            map.assign(Tag(number: update.value), to: update.range)
            model.assign(Tag(number: update.value), to: update.range)
        }
    }
    return (map, model)
}

@Suite struct RangeMapProperties {
    @Test func entriesAreTheCoalescedRunsOfTheReferenceModel() async throws {
        await propertyCheck(count: 300, input: mapUpdates, Gen.uint64(in: 0...UInt64.max)) { updates, seed in
            let (map, model) = replay(updates, seed: seed)
            #expect(throws: Never.self) { try map.checkInvariants() }
            let expected = model.runs(in: model.all).map { RangeMap<Tag>.Entry(range: $0.range, value: $0.value) }
            #expect(Array(map) == expected)
            #expect(map.rangeCount == expected.count)
            #expect(map.pageCount == expected.reduce(0) { $0 + $1.range.count })
            for page in 0..<UInt64(pageSpace) {
                #expect(map[page] == model[page])
            }
        }
    }

    @Test func windowQueriesMatchTheReferenceModel() async {
        await propertyCheck(count: 300, input: mapUpdates, windows) { updates, window in
            let (map, model) = replay(updates)
            let runs = model.runs(in: window)
            #expect(map.entries(overlapping: window).map(\.range) == runs.map(\.range))
            #expect(map.entries(overlapping: window).map(\.value) == runs.map(\.value))
            #expect(map.overlaps(window) == !runs.isEmpty)
            #expect(map.covers(window) == (runs.reduce(0) { $0 + $1.range.count } == window.count))
        }
    }

    @Test func firstGapIsTheLowestLongEnoughRunOfUnmappedPages() async {
        await propertyCheck(count: 400, input: mapUpdates, windows, Gen.uint64(in: 1...12)) { updates, window, pages in
            let (map, model) = replay(updates)
            let expected = model.gaps(in: window).first { $0.count >= pages }
            #expect(map.firstGap(ofAtLeast: pages, in: window) == expected)
        }
    }

    @Test func firstEntryIsTheLowestLongEnoughRangeInsideTheWindow() async {
        await propertyCheck(count: 400, input: mapUpdates, windows, Gen.uint64(in: 1...12)) { updates, window, pages in
            let (map, model) = replay(updates)
            let expected = model.runs(in: window).first { $0.range.count >= pages }
            let found = map.firstEntry(ofAtLeast: pages, in: window)
            #expect(found?.range == expected?.range)
            #expect(found?.value == expected?.value)
        }
    }

    @Test func lowestRankedIsTheLowestRangeWithTheSmallestRank() async {
        await propertyCheck(count: 300, input: mapUpdates) { updates in
            let (map, model) = replay(updates)
            let runs = model.runs(in: model.all)
            let smallest = runs.map(\.value.number).min()
            let expected = runs.first { $0.value.number == smallest }
            #expect(map.lowestRanked()?.range == expected?.range)
        }
    }

    @Test func neighbourLookupsMatchTheReferenceModel() async {
        await propertyCheck(count: 300, input: mapUpdates, Gen.uint64(in: 0...100)) { updates, page in
            let (map, model) = replay(updates)
            let runs = model.runs(in: model.all)
            #expect(map.entry(startingAtOrAfter: page)?.range == runs.first { $0.range.first >= page }?.range)
            #expect(map.entry(startingAtOrBefore: page)?.range == runs.last { $0.range.first <= page }?.range)
            #expect(map.entry(containing: page)?.range == runs.first { $0.range.contains(page) }?.range)
            #expect(map.first?.range == runs.first?.range)
            #expect(map.last?.range == runs.last?.range)
        }
    }

    @Test func copiesAreIndependentValues() async {
        await propertyCheck(count: 100, input: mapUpdates, mapUpdates) { before, after in
            let (original, model) = replay(before)
            var copy = original
            for update in after {
                if update.remove {
                    copy.remove(update.range)
                } else {
                    copy.assign(Tag(number: update.value), to: update.range)
                }
            }
            let expected = model.runs(in: model.all).map { RangeMap<Tag>.Entry(range: $0.range, value: $0.value) }
            #expect(Array(original) == expected)
        }
    }
}
