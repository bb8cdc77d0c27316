import EDMMClient
import Glibc
import Synchronization

/// A host process's side of its conversation with `edmm-sim run`: JSON lines out on standard
/// output, commands ("stop", "check", "exit") in on standard input. A thread of its own reads
/// standard input; when it closes without "exit" (the parent died), the host exits at once.
final class HostChannel: Sendable {
    private let writeLock = Mutex(())
    private let inbox = Mutex(Inbox())
    /// Set by "stop": the workload loop checks it between batches.
    let stopRequested = Atomic<Bool>(false)

    private struct Inbox {
        var commands: [String] = []
        var waiter: CheckedContinuation<String, Never>?
    }

    init() {
        DetachedThread.start { [self] in readCommands() }
    }

    func send(_ line: HostLine) { send(text: HostLine.encode(line)) }

    /// Writes one line (without its newline) to standard output, whole.
    func send(text: String) {
        let bytes = Array((text + "\n").utf8)
        writeLock.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }

    /// The next command other than "stop".
    func next() async -> String {
        await withCheckedContinuation { continuation in
            let ready: String? = inbox.withLock { i in
                if i.commands.isEmpty {
                    i.waiter = continuation
                    return nil
                }
                return i.commands.removeFirst()
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func readCommands() {
        while let line = readLine(strippingNewline: true) {
            if line == "stop" {
                stopRequested.store(true, ordering: .releasing)
                continue
            }
            deliver(line)
            if line == "exit" { return }
        }
        // The parent is gone: nothing will collect a report. The daemon unregisters the
        // enclave when this process's connection closes.
        exit(1)
    }

    private func deliver(_ line: String) {
        let waiter: CheckedContinuation<String, Never>? = inbox.withLock { i in
            if let w = i.waiter {
                i.waiter = nil
                return w
            }
            i.commands.append(line)
            return nil
        }
        waiter?.resume(returning: line)
    }
}
