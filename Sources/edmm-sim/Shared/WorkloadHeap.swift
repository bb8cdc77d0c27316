import EDMMClient
import EDMMCore
import EDMMSimHost

/// One allocation a workload holds: a run of pages in use with their permissions.
struct Block: Equatable {
    var range: PageRange
    var permissions: PagePermissions = .rw
    var isTCS = false
}

/// One operation of a batch and what it does to the workload's heap. A block the operation
/// works on is taken out of the heap when the batch is planned and put back (changed or not)
/// when the reply is in, so a batch never names a block twice.
struct Step {
    var operation: HostOperation
    var taken: Block?
    /// For an allocation: cut the grant into blocks of these sizes (pages) instead of one block.
    var carve: ClosedRange<UInt64>?

    static func allocate(_ pages: UInt64, growth: Bool = false, carve: ClosedRange<UInt64>? = nil) -> Step {
        Step(operation: .allocate(pages: pages, allowGrowth: growth), taken: nil, carve: carve)
    }
    static func free(_ block: Block) -> Step { Step(operation: .free(block.range), taken: block) }
    static func trim(_ block: Block) -> Step { Step(operation: .trim(block.range), taken: block) }
    static func restrict(_ block: Block, to p: PagePermissions) -> Step { Step(operation: .restrict(block.range, to: p), taken: block) }
    static func relax(_ block: Block, to p: PagePermissions) -> Step { Step(operation: .relax(block.range, to: p), taken: block) }
    static func makeTCS(_ block: Block) -> Step { Step(operation: .makeTCS(page: block.range.first), taken: block) }
}

/// The blocks a workload holds, kept in the order they were allocated.
struct Heap {
    private(set) var blocks: [Block] = []
    private(set) var pages: UInt64 = 0

    var isEmpty: Bool { blocks.isEmpty }
    var count: Int { blocks.count }

    mutating func add(_ block: Block) {
        blocks.append(block)
        pages += block.range.count
    }

    /// Removes and returns the block at `index`.
    mutating func take(at index: Int) -> Block {
        let block = blocks.remove(at: index)
        pages -= block.range.count
        return block
    }

    /// Takes a random block that satisfies `predicate`, if there is one.
    mutating func takeRandom(_ rng: inout SplitMix64, where predicate: (Block) -> Bool = { _ in true }) -> Block? {
        let candidates = blocks.indices.filter { predicate(blocks[$0]) }
        guard let index = candidates.randomElement(using: &rng) else { return nil }
        return take(at: index)
    }

    /// Takes up to `count` blocks that lie next to each other in the address space, starting at
    /// a random one (fragmentation happens between neighbours).
    mutating func takeNeighbours(_ count: Int, _ rng: inout SplitMix64, where predicate: (Block) -> Bool) -> [Block] {
        let order = blocks.indices.filter { predicate(blocks[$0]) }.sorted { blocks[$0].range.first < blocks[$1].range.first }
        guard !order.isEmpty else { return [] }
        let start = rng.int(0...(order.count - 1))
        let chosen = Array(order[start..<min(order.count, start + count)])
        let taken = chosen.map { blocks[$0] }
        for index in chosen.sorted(by: >) { _ = take(at: index) }
        return taken
    }

    /// Applies a batch's results: grants become blocks, taken blocks come back changed or, when
    /// the daemon refused, unchanged. Returns the refusals' errors.
    /// `keepsBlock`: whether a failed step's block goes back to the heap (not when its pages may
    /// be partly changed, as after a request a daemon crash left unanswered).
    mutating func apply<E: Error>(
        _ steps: [Step], _ results: [Result<HostOutcome, E>], _ rng: inout SplitMix64, keepsBlock: (E) -> Bool = { _ in true }
    ) -> [E] {
        var failures: [E] = []
        for (step, result) in zip(steps, results) {
            switch result {
            case .failure(let error):
                failures.append(error)
                if let block = step.taken, keepsBlock(error) { add(block) }
            case .success(let outcome):
                switch step.operation {
                case .allocate, .allocateAt:
                    guard let granted = outcome.granted else { continue }
                    if let sizes = step.carve {
                        var first = granted.first
                        while first < granted.end {
                            let size = min(rng.pages(sizes), granted.end - first)
                            add(Block(range: PageRange(first: first, count: size)))
                            first += size
                        }
                    } else {
                        add(Block(range: granted))
                    }
                case .free, .trim:
                    break
                case .restrict(_, let p):
                    if var block = step.taken {
                        block.permissions = p
                        add(block)
                    }
                case .relax(_, let p):
                    if var block = step.taken {
                        block.permissions.formUnion(p)
                        add(block)
                    }
                case .makeTCS:
                    if var block = step.taken {
                        block.isTCS = true
                        add(block)
                    }
                }
            }
        }
        return failures
    }
}
