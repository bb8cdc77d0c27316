import EDMMCore

/// The draws a workload makes, from SplitMix64 so that a workload's sequence of requests is the
/// same for the same seed on every machine.
extension SplitMix64 {
    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    mutating func pages(_ range: ClosedRange<UInt64>) -> UInt64 { UInt64.random(in: range, using: &self) }
}
