/// The ways `edmm-sim bench` runs the same workloads.
enum BenchApproach: String, CaseIterable, Codable {
    /// Today's runtimes: in-process ioctls with an exit each, no daemon (`PerRequestRuntime`).
    case perRequest = "per-request"
    /// SGX1-style: the workload's peak heap built at load, no EDMM afterwards (`StaticRuntime`).
    case staticHeap = "static"
    /// edmmd with batching, lazy free and growth off: every request is its own ioctls at once.
    case unbatched = "edmmd-unbatched"
    /// edmmd with batching on (lazy free and growth off).
    case batched = "edmmd-batched"
    /// edmmd as shipped: batching, lazy free and growth.
    case full = "edmmd-full"

    var usesDaemon: Bool { self != .perRequest && self != .staticHeap }

    /// The edmmd.toml sections that select the approach; `batchWindowMicros` overrides
    /// `[batch] window_us`.
    func daemonConfig(batchWindowMicros: UInt64? = nil) -> String {
        let (batch, pool, growth) =
            switch self {
            case .perRequest, .staticHeap, .unbatched: (false, false, false)
            case .batched: (true, false, false)
            case .full: (true, true, true)
            }
        return """
            [batch]
            enabled = \(batch)\(batchWindowMicros.map { "\nwindow_us = \($0)" } ?? "")
            [pool]
            enabled = \(pool)
            [growth]
            enabled = \(growth)

            """
    }
}
