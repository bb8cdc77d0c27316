import EDMMClient
import EDMMSystem
import Glibc
import Synchronization

/// A host process's side of its conversation with `edmm-sim run`: JSON lines out on standard
/// output, commands ("stop", "check", "exit") in on standard input. A thread of its own reads
/// standard input; when it closes without "exit" (the parent died), the host exits at once.
final class HostChannel: Sendable {
    private let inbox = CommandInbox<String>()
    /// Set by "stop": the workload loop checks it between batches.
    let stopRequested = Atomic<Bool>(false)

    init() {
        OSThread.startDetached { [self] in readCommands() }
    }

    func send(_ line: HostLine) { send(text: HostLine.encode(line)) }

    /// Writes one line (without its newline) to standard output, whole.
    func send(text: String) { StandardOutputLines.write(text) }

    /// The next command other than "stop".
    func next() async -> String { await inbox.next() }

    private func readCommands() {
        while let line = readLine(strippingNewline: true) {
            if line == "stop" {
                stopRequested.store(true, ordering: .releasing)
                continue
            }
            inbox.deliver(line)
            if line == "exit" { return }
        }
        // The parent is gone: nothing will collect a report. The daemon unregisters the
        // enclave when this process's connection closes.
        exit(1)
    }
}
