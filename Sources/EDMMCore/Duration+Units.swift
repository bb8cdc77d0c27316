extension Duration {
    /// The duration in seconds, as a floating-point number (rates, reports).
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Whole microseconds, clamped to `0...UInt64.max`.
    public var microsecondsClamped: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (fromSeconds, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000)
        let (total, carry) = fromSeconds.addingReportingOverflow(UInt64(max(0, attoseconds) / 1_000_000_000_000))
        return overflow || carry ? .max : total
    }
}
