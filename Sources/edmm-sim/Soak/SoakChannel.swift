import EDMMClient
import EDMMSystem
import Glibc

/// A soak host's side of its conversation with `edmm-sim soak`: JSON lines out on standard
/// output, commands in on standard input, read by a thread of its own. When standard input
/// closes (the soak died) the host exits at once; edmmd then unregisters its enclave.
final class SoakChannel: Sendable {
    private let inbox = CommandInbox<SoakCommandWord>()

    init() {
        OSThread.startDetached { [self] in readCommands() }
    }

    func send(_ line: SoakLine) { StandardOutputLines.write(line.encoded) }

    /// The next command if one arrived, without waiting.
    func poll() -> SoakCommandWord? { inbox.poll() }

    /// The next command, waiting for it.
    func next() async -> SoakCommandWord { await inbox.next() }

    private func readCommands() {
        while let line = readLine(strippingNewline: true) {
            guard let command = SoakCommandWord(rawValue: line) else { continue }
            inbox.deliver(command)
            if command == .exit { return }
        }
        Glibc.exit(1)
    }
}
