import EDMMClient
import EDMMProtocol
import Synchronization

/// Carries a connection's events from its reader thread to the host's own task, and counts the
/// RECLAIM notices that are not handled yet so that `settle()` can wait for them.
final class EventRelay: Sendable {
    private let stream: AsyncStream<ConnectionEvent>
    private let continuation: AsyncStream<ConnectionEvent>.Continuation
    private let progress = Mutex(Progress())

    private struct Progress {
        var unhandledNotices = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: ConnectionEvent.self)
    }

    /// The connection's event handler (reader thread): never blocks.
    var deliver: @Sendable (ConnectionEvent) -> Void {
        { [self] event in
            if case .push(let push) = event, case .reclaim = push.push {
                progress.withLock { $0.unhandledNotices += 1 }
            }
            continuation.yield(event)
            if case .closed = event { continuation.finish() }
        }
    }

    /// Starts handing events (including those that arrived before) to `host`, one at a time;
    /// `generation` names the host's connection they belong to.
    func attach(_ host: SimulatedEnclaveHost, generation: Int) {
        let stream = self.stream
        Task { [weak host] in
            for await event in stream {
                guard let host else { break }
                await host.receive(event, generation: generation)
                if case .push(let push) = event, case .reclaim = push.push { noticeHandled() }
            }
            releaseWaiters(all: true)
        }
    }

    /// RECLAIM notices received and not handled yet.
    var unhandledNotices: Int { progress.withLock { $0.unhandledNotices } }

    /// Waits until every RECLAIM notice received so far has been handled.
    func settle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = progress.withLock { p in
                if p.unhandledNotices == 0 { return true }
                p.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func noticeHandled() {
        progress.withLock { $0.unhandledNotices -= 1 }
        releaseWaiters(all: false)
    }

    private func releaseWaiters(all: Bool) {
        let waiters = progress.withLock { p in
            guard all || p.unhandledNotices == 0 else { return [CheckedContinuation<Void, Never>]() }
            if all { p.unhandledNotices = 0 }
            defer { p.waiters = [] }
            return p.waiters
        }
        waiters.forEach { $0.resume() }
    }
}
