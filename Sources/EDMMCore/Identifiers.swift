/// The daemon's handle for one registered enclave.
public struct EnclaveID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: EnclaveID, rhs: EnclaveID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "enclave \(rawValue)" }
}

/// Identifies one queued request within an enclave's queue. The daemon makes it unique per
/// enclave (for instance connection number and the client's request id packed together); the
/// planner orders ties by it so that plans are deterministic.
public struct RequestID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: RequestID, rhs: RequestID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "request \(rawValue)" }
}
