import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import EDMMSystem
import FoundationEssentials
import Glibc

/// `edmm-sim hold`: one simulated enclave host that stays, reconnecting whenever edmmd restarts,
/// and answers commands on standard input with one JSON line each on standard output. It is how
/// scripts (the real-systemd test, a demo of `systemctl restart edmmd`) watch an enclave live
/// through the daemon's lifecycle.
struct HoldCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hold",
        abstract: "Hold one simulated enclave across edmmd restarts; answer commands in JSON lines.",
        discussion: """
            Registers an enclave, allocates --pages pages, frees an eighth of them into edmmd's \
            pool and trims a sixteenth, then prints a "ready" status line and reads commands, \
            one per line:

              status       the enclave as the host and edmmd see it: handle, reconnections,
                           edmmd's ledger and counters (STATS), and whether the EPCM matches
                           the host's record and edmmd's ledger
              allocate N   ALLOCATE N more pages; ok, or edmmd's error
              quit         UNREGISTER and exit (so does the end of input)

            When edmmd goes away (restart, crash) the host reconnects and ATTACHes its enclave \
            again, or registers it again with its pages if edmmd lost it.
            """)

    @Option(help: ArgumentHelp("edmmd's control socket ($EDMMD_SOCKET, when set, is the default).", valueName: "path"))
    var socket: String = ControlSocket.fromEnvironment

    @Option(help: "The enclave's label.")
    var label: String = "held"

    @Option(help: "Pages to allocate at the start (16...65536).")
    var pages: UInt64 = 1024

    @Option(help: ArgumentHelp("Give up reconnecting after this many seconds.", valueName: "seconds"))
    var reconnectFor: Int = 120

    func validate() throws {
        guard (16...65_536).contains(pages) else { throw ValidationError("--pages must be 16...65536") }
        guard reconnectFor > 0 else { throw ValidationError("--reconnect-for must be positive") }
    }

    func run() async throws {
        let host: SimulatedEnclaveHost
        do {
            host = try await SimulatedEnclaveHost.launch(
                socketPath: socket, blueprint: EnclaveBlueprint(label: label, fireAndForget: false), clientName: "edmm-sim hold",
                reconnect: ReconnectPolicy(giveUpAfter: .seconds(reconnectFor)))
            let granted = try await host.allocate(pages: pages)
            _ = try await host.run(.free(PageRange(first: granted.first, count: pages / 8)))
            _ = try await host.run(.trim(PageRange(first: granted.first + pages / 8, count: pages / 16)))
            try await host.sync()
        } catch {
            Self.emit(HoldLine(event: "error", error: "\(error)"))
            throw ExitCode(1)
        }
        Self.emit(await Self.status(host, event: "ready"))
        while let line = await Self.nextLine(), line != "quit" {
            let words = line.split(separator: " ").map(String.init)
            if words == ["status"] {
                Self.emit(await Self.status(host, event: "status"))
            } else if words.count == 2, words[0] == "allocate", let count = UInt64(words[1]), count > 0 {
                do {
                    let granted = try await host.allocate(pages: count)
                    Self.emit(HoldLine(event: "allocated", ok: true, granted: [granted.first, granted.count]))
                } catch {
                    let code: String? = if case .client(.daemon(let wire)) = error { "\(wire.code)" } else { nil }
                    Self.emit(HoldLine(event: "allocated", ok: false, error: "\(error)", code: code))
                }
            } else {
                Self.emit(HoldLine(event: "error", error: "unknown command \"\(line)\" (status, allocate N, quit)"))
            }
        }
        do {
            try await host.unregister()
        } catch {
            host.close()
        }
        Self.emit(HoldLine(event: "bye"))
    }

    /// The next line of standard input, read on a thread of its own: a blocking read must not
    /// hold one of the concurrency pool's threads, which the host needs to reconnect.
    private static func nextLine() async -> String? {
        await withCheckedContinuation { continuation in
            OSThread.startDetached { continuation.resume(returning: readLine(strippingNewline: true)) }
        }
    }

    /// The enclave as both sides see it.
    private static func status(_ host: SimulatedEnclaveHost, event: String) async -> HoldLine {
        var line = HoldLine(event: event)
        line.handle = host.handle
        line.reconnections = host.reconnections
        let verification = await host.verify()
        line.epcmMatches = verification.epcm.matches
        line.ledgerMatches = verification.ledger?.matches
        line.problems = verification.problems + (verification.ledger?.problems ?? []) + verification.epcm.examples
        line.asyncErrors = host.stats.asyncErrors
        if let stats = try? await host.connection.stats(host.handle) {
            let s = stats.summary
            line.ledger = [
                "committed": s.committedPages, "pooled": s.pooledPages, "trimming": s.trimmingPages, "removing": s.removingPages,
                "tcs": s.tcsPages, "quota": s.quotaPages,
            ]
            line.requests = s.requests
            line.counters = Dictionary(stats.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        }
        return line
    }

    private static func emit(_ line: HoldLine) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(line) else { return }
        let bytes = Array(data) + [UInt8(ascii: "\n")]
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            guard n > 0 else { return }
            offset += n
        }
    }
}

/// One line of `edmm-sim hold`'s output.
struct HoldLine: Encodable {
    var event: String
    var ok: Bool?
    var error: String?
    var code: String?
    var granted: [UInt64]?
    var handle: UInt64?
    var reconnections: Int?
    /// edmmd's ledger by page state (STATS), and the enclave's quota in pages.
    var ledger: [String: UInt64]?
    var requests: UInt64?
    var counters: [String: UInt64]?
    var epcmMatches: Bool?
    var ledgerMatches: Bool?
    var problems: [String]?
    var asyncErrors: [String]?
}
