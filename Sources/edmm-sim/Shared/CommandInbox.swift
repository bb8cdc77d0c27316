import Glibc
import Synchronization

/// Commands from the parent process, read by one thread and taken by one task at a time.
/// Safe from any thread.
final class CommandInbox<Command: Sendable>: Sendable {
    private struct State {
        var commands: [Command] = []
        var waiter: CheckedContinuation<Command, Never>?
    }

    private let state = Mutex(State())

    func deliver(_ command: Command) {
        let waiter: CheckedContinuation<Command, Never>? = state.withLock { s in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.commands.append(command)
            return nil
        }
        waiter?.resume(returning: command)
    }

    /// The next command if one arrived, without waiting.
    func poll() -> Command? {
        state.withLock { $0.commands.isEmpty ? nil : $0.commands.removeFirst() }
    }

    /// The next command, waiting for it.
    func next() async -> Command {
        await withCheckedContinuation { continuation in
            let ready: Command? = state.withLock { s in
                if s.commands.isEmpty {
                    s.waiter = continuation
                    return nil
                }
                return s.commands.removeFirst()
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// A host process's standard output, shared by its threads: one whole line at a time.
enum StandardOutputLines {
    private static let lock = Mutex(())

    /// Writes `text` and a newline, whole.
    static func write(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        lock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                offset += n
            }
        }
    }
}
