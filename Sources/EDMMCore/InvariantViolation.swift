/// A broken internal invariant of a model type, found by a `checkInvariants()` method. It means
/// a bug in edmmd, never bad input; the daemon's soak test and the unit tests look for it.
public struct InvariantViolation: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "invariant violated: \(message)" }
}
