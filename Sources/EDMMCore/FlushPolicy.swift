/// When an enclave's queue must flush, as an I/O-free state machine: the daemon feeds it events
/// with the current time and performs the action it returns (events in, actions out; the daemon
/// owns the one timer per enclave). Returning `.flush` means the daemon takes every queued
/// request now; the window is closed at that point.
///
/// A window opens with the first queued request and closes `window` after it (default 500 µs),
/// as soon as `maximumPages` pages are queued (default 4096, 16 MiB), on SYNC and on shutdown.
/// Without batching (the `--no-batch` baseline) every request flushes at once, alone.
public struct FlushPolicy: Hashable, Sendable {
    public struct Configuration: Hashable, Sendable {
        public var batching: Bool
        public var window: Duration
        public var maximumPages: UInt64

        public init(batching: Bool = true, window: Duration = .microseconds(500), maximumPages: UInt64 = 4096) {
            self.batching = batching
            self.window = window
            self.maximumPages = maximumPages
        }
    }

    public enum Reason: Hashable, Sendable {
        case windowElapsed, pageLimit, sync, shutdown, unbatched
    }

    public enum Action: Hashable, Sendable {
        /// Nothing to do yet.
        case none
        /// (Re)arm the enclave's timer for this instant and call `timerFired` then.
        case armTimer(MonotonicInstant)
        /// Flush every queued request now.
        case flush(Reason)
    }

    private enum State: Hashable, Sendable {
        case idle
        case collecting(deadline: MonotonicInstant, pages: UInt64)
        case shuttingDown
    }

    public let configuration: Configuration
    private var state = State.idle

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// True while a window is open.
    public var isCollecting: Bool {
        if case .collecting = state { return true }
        return false
    }

    /// A request of `pages` pages joined the queue.
    public mutating func requestQueued(pages: UInt64, now: MonotonicInstant) -> Action {
        guard configuration.batching else { return .flush(.unbatched) }
        switch state {
        case .shuttingDown:
            return .flush(.shutdown)
        case .idle:
            return collect(pages: pages, deadline: now + configuration.window, opening: true)
        case .collecting(let deadline, let queued):
            let (total, overflow) = queued.addingReportingOverflow(pages)
            return collect(pages: overflow ? .max : total, deadline: deadline, opening: false)
        }
    }

    /// The timer armed by `.armTimer` fired (possibly late, or for a window already flushed).
    public mutating func timerFired(now: MonotonicInstant) -> Action {
        guard case .collecting(let deadline, _) = state else { return .none }
        guard now >= deadline else { return .armTimer(deadline) }
        state = .idle
        return .flush(.windowElapsed)
    }

    /// SYNC: flush everything queued before it.
    public mutating func sync() -> Action {
        flushed()
        return .flush(.sync)
    }

    /// The daemon flushed the queue for a reason of its own (SYNC, or a request that needs queued
    /// work done first), and disarmed the timer: the window is closed, and the next request opens
    /// a new one (and arms the timer again).
    public mutating func flushed() {
        if case .collecting = state { state = .idle }
    }

    /// Shutdown or UNREGISTER: flush now, and flush every later request at once.
    public mutating func shutdown() -> Action {
        state = .shuttingDown
        return .flush(.shutdown)
    }

    private mutating func collect(pages: UInt64, deadline: MonotonicInstant, opening: Bool) -> Action {
        if pages >= configuration.maximumPages {
            state = .idle
            return .flush(.pageLimit)
        }
        state = .collecting(deadline: deadline, pages: pages)
        return opening ? .armTimer(deadline) : .none
    }
}
