import EDMMClient
import EDMMCore

/// Every verb at random, on whole blocks and on parts of them (so ranges split and merge in the
/// ledger): allocations anywhere (sometimes grown) and at random addresses of the managed range,
/// frees, trims (TCS pages included), restrictions to read-only and back, and new TCS pages.
/// Used by `edmm-sim soak` next to the four workloads of `edmm-sim run`.
struct ChaosWorkload: Workload {
    let workingSet: UInt64
    let managed: PageRange

    mutating func next(_ heap: inout Heap, _ rng: inout SplitMix64) -> [Step] {
        var steps: [Step] = []
        for _ in 0..<rng.int(1...6) {
            let growing = heap.pages < workingSet
            switch rng.int(0...9) {
            case 0...2 where growing:
                steps.append(.allocate(rng.pages(1...16), growth: rng.chance(0.3)))
            case 3 where growing:
                let count = rng.pages(1...8)
                let first = rng.pages(managed.first...(managed.end - count))
                steps.append(Step(operation: .allocateAt(PageRange(first: first, count: count)), taken: nil, carve: nil))
            case 4, 9:
                if let part = heap.takePart(&rng, where: { !$0.isTCS && $0.permissions == .rw }) { steps.append(.free(part)) }
            case 5:
                if let part = heap.takePart(&rng, where: { _ in true }) { steps.append(.trim(part)) }
            case 6:
                if let part = heap.takePart(&rng, where: { !$0.isTCS && $0.permissions == .rw }) {
                    steps.append(.restrict(part, to: .read))
                }
            case 7:
                if let block = heap.takeRandom(&rng, where: { !$0.isTCS && $0.permissions == .read }) {
                    steps.append(.relax(block, to: .rw))
                }
            case 8:
                if let page = heap.takePart(&rng, maxPages: 1, where: { !$0.isTCS && $0.permissions == .rw }) {
                    steps.append(.makeTCS(page))
                }
            default:
                if let block = heap.takeRandom(&rng, where: { !$0.isTCS && $0.permissions == .rw }) { steps.append(.free(block)) }
            }
        }
        return steps
    }
}

extension Heap {
    /// Takes a random run of pages out of a random block that satisfies `predicate` (at most
    /// `maxPages`); the rest of the block stays in the heap as up to two blocks.
    mutating func takePart(_ rng: inout SplitMix64, maxPages: UInt64 = .max, where predicate: (Block) -> Bool) -> Block? {
        guard let block = takeRandom(&rng, where: predicate) else { return nil }
        let range = block.range
        let count = rng.pages(1...min(maxPages, range.count))
        let first = rng.pages(range.first...(range.end - count))
        var part = block
        part.range = PageRange(first: first, count: count)
        for (start, end) in [(range.first, first), (first + count, range.end)] where end > start {
            var piece = block
            piece.range = PageRange(first: start, end: end)
            add(piece)
        }
        return part
    }
}
