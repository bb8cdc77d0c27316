import Glibc

/// Round-trip latencies in log-spaced buckets (16 per power of two, so a percentile is within
/// about 4.4% of the true value), mergeable across processes.
public struct LatencyHistogram: Sendable, Equatable {
    static let bucketsPerOctave = 16.0
    static let bucketCount = 40 * 16  // 1 ns ... 2^40 ns (18 minutes)

    public private(set) var counts: [UInt64] = Array(repeating: 0, count: bucketCount)
    public private(set) var total: UInt64 = 0

    public init() {}

    public mutating func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = max(1.0, Double(seconds) * 1e9 + Double(attoseconds) / 1e9)
        record(bucket: Int((log2(nanoseconds) * Self.bucketsPerOctave).rounded(.down)))
    }

    mutating func record(bucket: Int, count: UInt64 = 1) {
        counts[min(max(bucket, 0), Self.bucketCount - 1)] += count
        total += count
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for (bucket, count) in other.counts.enumerated() where count > 0 { record(bucket: bucket, count: count) }
    }

    /// The `q`-quantile (0...1) in microseconds, the geometric middle of its bucket; nil when empty.
    public func quantileMicros(_ q: Double) -> Double? {
        guard total > 0 else { return nil }
        let rank = max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for (bucket, count) in counts.enumerated() {
            seen += count
            if seen >= rank { return Self.middleNanoseconds(bucket) / 1000 }
        }
        return nil
    }

    static func middleNanoseconds(_ bucket: Int) -> Double {
        pow(2, (Double(bucket) + 0.5) / bucketsPerOctave)
    }

    /// Sparse form for passing between processes: (bucket, count) pairs.
    public var sparse: [(bucket: Int, count: UInt64)] {
        counts.enumerated().filter { $0.element > 0 }.map { ($0.offset, $0.element) }
    }

    public init(sparse: [(bucket: Int, count: UInt64)]) {
        for (bucket, count) in sparse { record(bucket: bucket, count: count) }
    }
}
