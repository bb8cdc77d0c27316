import Dispatch

/// A value that belongs to one serial queue, in the spirit of SwiftNIO's `NIOLoopBound`: the
/// binding is Sendable and may be held anywhere, but only code running on `queue` reaches the
/// value, and anywhere else traps. The value's own type is not Sendable, so the compiler keeps it
/// from reaching another queue any other way (a Dispatch closure cannot capture it): queue
/// confinement is checked, not a comment.
final class QueueBound<Value>: @unchecked Sendable {
    // @unchecked: `stored` is written once before the binding is shared (`init`, `fill`) and
    // otherwise read only on `queue`, a serial queue, which orders every access.
    let queue: DispatchQueue
    private var stored: Value?

    init(_ value: Value, queue: DispatchQueue) {
        self.queue = queue
        stored = value
    }

    /// An empty binding, for a value that refers back to its owner: the owner fills it at the end
    /// of its initializer, before anything else can reach it.
    init(queue: DispatchQueue) {
        self.queue = queue
    }

    func fill(_ value: Value) {
        if stored != nil { preconditionFailure("a QueueBound is filled once") }
        stored = value
    }

    /// The value; the caller must be running on `queue`.
    var value: Value {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let stored else { preconditionFailure("a QueueBound read before it was filled") }
        return stored
    }

    /// Runs `body` with the value on `queue`, later.
    func async(_ body: @escaping @Sendable (Value) -> Void) {
        queue.async { body(self.value) }
    }
}
