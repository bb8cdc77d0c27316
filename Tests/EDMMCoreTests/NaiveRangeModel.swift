import EDMMCore

/// The reference model for the range structures: one optional value per page of a small page
/// space, with every query answered by a linear scan.
struct NaivePages<Value: Equatable> {
    var pages: [Value?]

    init(size: Int) { pages = Array(repeating: nil, count: size) }

    mutating func assign(_ value: Value?, to range: PageRange) {
        for page in range.first..<range.end where page < pages.count { pages[Int(page)] = value }
    }

    /// Maximal runs of equal mapped values inside `window`.
    func runs(in window: PageRange) -> [(range: PageRange, value: Value)] {
        var result: [(range: PageRange, value: Value)] = []
        var page = window.first
        while page < window.end {
            guard let value = self[page] else {
                page += 1
                continue
            }
            var end = page + 1
            while end < window.end, self[end] == value { end += 1 }
            result.append((PageRange(first: page, end: end), value))
            page = end
        }
        return result
    }

    /// Maximal runs of unmapped pages inside `window`.
    func gaps(in window: PageRange) -> [PageRange] {
        var result: [PageRange] = []
        var page = window.first
        while page < window.end {
            if self[page] != nil {
                page += 1
                continue
            }
            var end = page + 1
            while end < window.end, self[end] == nil { end += 1 }
            result.append(PageRange(first: page, end: end))
            page = end
        }
        return result
    }

    subscript(page: UInt64) -> Value? { page < pages.count ? pages[Int(page)] : nil }

    var all: PageRange { PageRange(first: 0, count: UInt64(pages.count)) }
}
