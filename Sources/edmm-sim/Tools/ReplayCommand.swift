import ArgumentParser
import Glibc
import SGXSimulator

/// `edmm-sim replay [FILE]`: runs a JSON-lines trace of device operations on a fresh simulated
/// EPC and prints one JSON result per input line (format in docs/simulator.md).
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Replay a JSON-lines trace of device operations on a fresh simulated EPC.")

    @Argument(help: "Trace file (default: standard input).")
    var file: String?

    func run() throws {
        var input: LineSource
        if let file {
            guard let source = LineSource(path: file) else { throw ValidationError("cannot open \(file)") }
            input = source
        } else {
            input = LineSource.standardInput
        }
        let replay = try Replay()
        while let line = input.next() {
            print(replay.perform(line))
            fflush(nil)
        }
    }
}
