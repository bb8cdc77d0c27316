import Glibc
import Synchronization

/// A value that one thread at a time holds, as `QueueBound` binds a value to one queue: the
/// binding is Sendable and may be held anywhere, but only the thread inside `withValue` (or a
/// successful `withValueIfAvailable`) reaches the value, and any other thread traps. For state
/// that its own serial queue owns and that another thread may borrow when the queue is idle
/// (an enclave's state, which the socket loop serves inline): the queue's work items wait for
/// the binding, the loop only tries it and never waits. The value's type is not Sendable, so the
/// compiler keeps it from reaching another thread any other way.
final class OwnerBound<Value>: @unchecked Sendable {
    // @unchecked: `stored` is written once before the binding is shared (`fill`) and otherwise
    // read only by the thread that holds `lock`, which orders every access.
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    /// The thread holding `lock`, 0 when none: what `value` checks.
    private let owner = Atomic<UInt>(0)
    private var stored: Value?

    /// An empty binding, for a value that refers back to its owner: the owner fills it at the end
    /// of its initializer, before anything else can reach it.
    init() {
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    func fill(_ value: Value) {
        if stored != nil { preconditionFailure("an OwnerBound is filled once") }
        stored = value
    }

    private static var currentThread: UInt { UInt(pthread_self()) }

    /// The value; the calling thread must hold the binding.
    var value: Value {
        // Only this thread ever stores its own id, and it clears it before letting go: a relaxed
        // load sees the id only while this thread holds the lock.
        guard owner.load(ordering: .relaxed) == Self.currentThread else {
            preconditionFailure("an OwnerBound value reached by a thread that does not hold it")
        }
        guard let stored else { preconditionFailure("an OwnerBound read before it was filled") }
        return stored
    }

    /// Runs `body` with the value, waiting while another thread holds it (every holder holds it
    /// briefly, or is the value's own serial queue). Not reentrant.
    func withValue<T>(_ body: (Value) throws -> T) rethrows -> T {
        if owner.load(ordering: .relaxed) == Self.currentThread { preconditionFailure("an OwnerBound taken twice by one thread") }
        pthread_mutex_lock(lock)
        return try held(body)
    }

    /// Runs `body` with the value if no other thread holds it; nil (and `body` not run) if one does.
    func withValueIfAvailable<T>(_ body: (Value) throws -> T) rethrows -> T? {
        guard pthread_mutex_trylock(lock) == 0 else { return nil }
        return try held(body)
    }

    private func held<T>(_ body: (Value) throws -> T) rethrows -> T {
        owner.store(Self.currentThread, ordering: .relaxed)
        defer {
            owner.store(0, ordering: .relaxed)
            pthread_mutex_unlock(lock)
        }
        return try body(value)
    }
}
