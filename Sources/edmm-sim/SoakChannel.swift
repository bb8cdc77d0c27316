import EDMMClient
import Glibc
import Synchronization

/// A soak host's side of its conversation with `edmm-sim soak`: JSON lines out on standard
/// output, commands in on standard input, read by a thread of its own. When standard input
/// closes (the soak died) the host exits at once; edmmd then unregisters its enclave.
final class SoakChannel: Sendable {
    private let writeLock = Mutex(())
    private let inbox = Mutex(Inbox())

    private struct Inbox {
        var commands: [SoakCommandWord] = []
        var waiter: CheckedContinuation<SoakCommandWord, Never>?
    }

    init() {
        DetachedThread.start { [self] in readCommands() }
    }

    func send(_ line: SoakLine) {
        let bytes = Array((line.encoded + "\n").utf8)
        writeLock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                offset += n
            }
        }
    }

    /// The next command if one arrived, without waiting.
    func poll() -> SoakCommandWord? {
        inbox.withLock { $0.commands.isEmpty ? nil : $0.commands.removeFirst() }
    }

    /// The next command, waiting for it.
    func next() async -> SoakCommandWord {
        await withCheckedContinuation { continuation in
            let ready: SoakCommandWord? = inbox.withLock { i in
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
            guard let command = SoakCommandWord(rawValue: line) else { continue }
            let waiter: CheckedContinuation<SoakCommandWord, Never>? = inbox.withLock { i in
                if let w = i.waiter {
                    i.waiter = nil
                    return w
                }
                i.commands.append(command)
                return nil
            }
            waiter?.resume(returning: command)
            if command == .exit { return }
        }
        Glibc.exit(1)
    }
}
