import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc

/// `edmmctl top`: a live table of the enclaves, refreshed like top(1).
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch edmmd live: EPC use and one row per enclave with request and ioctl rates.",
        discussion: """
            In a terminal, top takes the whole screen and refreshes every --interval seconds. Keys: \
            c committed, p pool, r requests/s, i ioctls/s, n id, l label (sort), q quit. Ctrl-C \
            also quits; the terminal is restored either way.

            When standard output is not a terminal, or with --batch, it prints one plain frame per \
            interval (for logs and scripts) until --iterations frames or Ctrl-C.

            --json prints one JSON object per interval, one per line, instead of frames: \
            {"elapsed_seconds", "status": {as `edmmctl status --json`}, "enclaves": [{"enclave": \
            {as `edmmctl enclaves --json`}, "requests_per_second", "ioctls_per_second"}]} in --sort \
            order; the rates are null in the first object (they need two samples).
            """)

    /// One `--json` line.
    struct Frame: Encodable {
        struct Row: Encodable {
            var enclave: EnclaveRow
            var requestsPerSecond: Double?
            var ioctlsPerSecond: Double?

            // Explicit so that a rate not known yet is written as null rather than left out.
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(enclave, forKey: .enclave)
                try c.encode(requestsPerSecond, forKey: .requestsPerSecond)
                try c.encode(ioctlsPerSecond, forKey: .ioctlsPerSecond)
            }

            private enum CodingKeys: String, CodingKey { case enclave, requestsPerSecond, ioctlsPerSecond }
        }
        var elapsedSeconds: Double
        var status: StatusReport
        var enclaves: [Row]
    }

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Seconds between refreshes.", valueName: "seconds"))
    var interval: Double = 1

    @Option(help: ArgumentHelp("Initial order of the rows (a key changes it).", valueName: "key"))
    var sort: TopSort = .committed

    @Option(help: ArgumentHelp("Stop after this many refreshes (default: until q or Ctrl-C).", valueName: "count"))
    var iterations: Int?

    @Flag(help: "Print plain frames one after another instead of taking over the terminal.")
    var batch = false

    func validate() throws {
        guard interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval must be between 0.1 and 3600 seconds") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
    }

    func run() async throws {
        let connection = try await DaemonSession.connect(global)
        defer { connection.close() }
        let terminal = batch || global.json ? nil : Terminal()
        let events = TopEvents(interval: interval, keyboard: terminal != nil)
        terminal?.enter()
        var failure: EDMMClientError?
        var screen = TopScreen(sort: sort)
        var frames = 0
        var elapsed = 0.0
        let clock = ContinuousClock()
        let start = clock.now
        loop: for await event in events.stream {
            switch event {
            case .stop, .key(UInt8(ascii: "q")), .key(UInt8(ascii: "Q")):
                break loop
            case .key(let key):
                guard let order = TopSort(key: key) else { continue }
                screen.sort = order
            case .resize:
                break
            case .tick:
                do throws(EDMMClientError) {
                    let status = try await connection.status()
                    let enclaves = try await connection.allEnclaves()
                    let since = clock.now - start
                    elapsed = since.inSeconds
                    screen.update(status: status, enclaves: enclaves, at: elapsed)
                } catch {
                    failure = error
                    break loop
                }
                frames += 1
            }
            if let terminal {
                let size = terminal.size
                terminal.draw(screen.lines(rows: size.rows, columns: size.columns, interactive: true))
            } else if case .tick = event, global.json, let status = screen.status {
                let rows = screen.sortedRows.map {
                    Frame.Row(enclave: EnclaveRow($0.enclave), requestsPerSecond: $0.requestsPerSecond, ioctlsPerSecond: $0.ioctlsPerSecond)
                }
                print(jsonText(Frame(elapsedSeconds: elapsed, status: StatusReport(status), enclaves: rows)))
            } else if case .tick = event {
                print(screen.lines(rows: 0, columns: 0, interactive: false).joined(separator: "\n") + "\n")
            }
            fflush(nil)  // a frame at a time, also into a pipe
            if let iterations, frames >= iterations { break }
        }
        events.cancel()
        terminal?.restore()
        if let failure { throw DaemonSession.fail(failure, json: global.json) }
    }
}
