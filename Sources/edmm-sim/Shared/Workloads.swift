import EDMMCore

/// A seeded, deterministic generator of batches for one simulated enclave. Each call plans
/// the next batch (one exit's worth of requests) from the heap the workload holds.
protocol Workload {
    mutating func next(_ heap: inout Heap, _ rng: inout SplitMix64) -> [Step]
}

/// The workloads `edmm-sim run --workload` knows, each shaped like its namesake (see
/// docs/client.md, "edmm-sim run").
enum WorkloadKind: String, CaseIterable {
    case server, startup, gc, fragmented

    func make(workingSet: UInt64) -> any Workload {
        switch self {
        case .server: ServerWorkload(workingSet: workingSet)
        case .startup: StartupWorkload(workingSet: workingSet)
        case .gc: GCWorkload(workingSet: workingSet)
        case .fragmented: FragmentedWorkload(workingSet: workingSet)
        }
    }
}

/// A request-serving process: every batch handles a few requests, each allocating a buffer
/// (mostly 1-4 pages, sometimes 16) and freeing the buffer of an earlier request, so the heap
/// churns around half the working set through the lazy-free pool. Now and then a buffer is
/// sealed read-only (RESTRICT) and later opened again (RELAX), a large buffer goes back to the
/// OS (TRIM), and a worker thread starts (MAKE_TCS) or exits (TRIM of its TCS).
struct ServerWorkload: Workload {
    let workingSet: UInt64

    mutating func next(_ heap: inout Heap, _ rng: inout SplitMix64) -> [Step] {
        var steps: [Step] = []
        for _ in 0..<rng.int(1...4) {
            let size: UInt64 = rng.chance(0.5) ? 1 : rng.chance(0.5) ? 2 : rng.chance(0.6) ? 4 : 16
            steps.append(.allocate(size))
            if heap.pages > workingSet / 2, let old = heap.takeRandom(&rng, where: { $0.permissions == .rw && !$0.isTCS }) {
                steps.append(old.range.count >= 16 && rng.chance(0.3) ? .trim(old) : .free(old))
            }
        }
        if rng.chance(0.05), let block = heap.takeRandom(&rng, where: { $0.permissions == .rw && !$0.isTCS }) {
            steps.append(.restrict(block, to: .read))
        }
        if rng.chance(0.05), let block = heap.takeRandom(&rng, where: { $0.permissions == .read }) {
            steps.append(.relax(block, to: .rw))
        }
        if rng.chance(0.01) {
            let threads = heap.blocks.filter(\.isTCS).count
            if threads < 4, let page = heap.takeRandom(&rng, where: { $0.range.count == 1 && $0.permissions == .rw && !$0.isTCS }) {
                steps.append(.makeTCS(page))
            } else if let thread = heap.takeRandom(&rng, where: \.isTCS) {
                steps.append(.trim(thread))
            }
        }
        return steps
    }
}

/// A process starting up and restarting: it grows fast to its working set in large chunks
/// (16-64 pages, letting edmmd grow the grants), frees a few (about a tenth) and trims a few,
/// then exits and starts again: everything it holds is trimmed, 32 blocks a batch.
struct StartupWorkload: Workload {
    let workingSet: UInt64
    private var phase = Phase.grow

    enum Phase {
        case grow, settle, teardown
    }

    init(workingSet: UInt64) { self.workingSet = workingSet }

    mutating func next(_ heap: inout Heap, _ rng: inout SplitMix64) -> [Step] {
        switch phase {
        case .grow:
            if heap.pages >= workingSet { phase = .settle }
            return (0..<rng.int(2...4)).map { _ in .allocate(rng.pages(16...64), growth: true) }
        case .settle:
            phase = .teardown
            var steps: [Step] = []
            for _ in 0..<max(1, heap.count / 10) {
                if let block = heap.takeRandom(&rng, where: { !$0.isTCS }) { steps.append(rng.chance(0.7) ? .free(block) : .trim(block)) }
            }
            return steps
        case .teardown:
            var steps: [Step] = []
            while steps.count < 32, !heap.isEmpty { steps.append(.trim(heap.take(at: 0))) }
            if heap.isEmpty { phase = .grow }
            return steps
        }
    }
}

/// A garbage-collected runtime: the heap grows in 32-page regions until it reaches the working
/// set, then a collection releases about half of the regions in one batch, whole regions at a
/// time: some go to the lazy-free pool for the next growth (FREE), the rest back to the OS
/// (TRIM).
struct GCWorkload: Workload {
    let workingSet: UInt64

    mutating func next(_ heap: inout Heap, _ rng: inout SplitMix64) -> [Step] {
        guard heap.pages >= workingSet else { return (0..<rng.int(2...8)).map { _ in .allocate(32) } }
        var steps: [Step] = []
        for _ in 0..<max(1, heap.count / 2) {
            guard let region = heap.takeRandom(&rng) else { break }
            steps.append(rng.chance(0.5) ? .free(region) : .trim(region))
        }
        return steps
    }
}

/// A long-lived heap of small objects: 64-page arenas cut into 1-2 page objects; every batch
/// walks 16 neighbouring objects and frees or trims runs of them (an action tends to repeat
/// for the next neighbour), keeping some, which leaves holes; then it allocates a few small
/// objects, which land in those holes from the pool. A new arena comes when the heap falls
/// below half the working set.
struct FragmentedWorkload: Workload {
    let workingSet: UInt64

    mutating func next(_ heap: inout Heap, _ rng: inout SplitMix64) -> [Step] {
        var steps: [Step] = []
        if heap.pages < workingSet / 2 { steps.append(.allocate(64, carve: 1...2)) }
        enum Action { case free, trim, keep }
        var action = Action.keep
        for object in heap.takeNeighbours(16, &rng, where: { !$0.isTCS }) {
            if !rng.chance(0.6) { action = [Action.free, .trim, .keep].randomElement(using: &rng) ?? .keep }
            switch action {
            case .free: steps.append(.free(object))
            case .trim: steps.append(.trim(object))
            case .keep: heap.add(object)
            }
        }
        for _ in 0..<rng.int(2...8) { steps.append(.allocate(rng.pages(1...2))) }
        return steps
    }
}
