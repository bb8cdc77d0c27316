import ArgumentParser
import EDMMClient
import EDMMProtocol

/// `edmmctl show ENCLAVE`: one enclave in detail (STATS).
struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one enclave in detail: owner, ELRANGE, pages by state, and every counter.",
        discussion: """
            ENCLAVE is an enclave id (the ID column of `edmmctl enclaves`) or a label; a label \
            several enclaves share is refused with their ids. Counters that are zero are left out \
            of the text; --json lists them all.

            --json prints {"enclave": {...}, "managed": {"offset", "length"}, "counters": {...}}, \
            where "enclave" has the fields of `edmmctl enclaves --json` and "counters" maps every \
            STATS counter name (docs/protocol.md) to its value.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("An enclave id or label.", valueName: "enclave"))
    var enclave: String

    struct Detail: Encodable {
        struct Managed: Encodable {
            var offset: UInt64
            var length: UInt64
        }
        var enclave: EnclaveRow
        var managed: Managed
        var counters: [String: UInt64]
    }

    func run() async throws {
        let (stats, scopes) = try await DaemonSession.with(global) { connection throws(EDMMClientError) in
            let handle = try await EnclaveLookup.handle(of: enclave, on: connection)
            return (try await connection.stats(handle), try await connection.allScopes())
        }
        let placement = ScopePlacement(scopes)
        let row = EnclaveRow(stats.summary, placement: placement)
        if global.json {
            let counters = Dictionary(stats.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
            print(
                jsonText(
                    Detail(enclave: row, managed: .init(offset: stats.managed.offset, length: stats.managed.length), counters: counters)))
            return
        }
        var lines = [
            "enclave \(row.id) \"\(terminalSafe(row.label))\" (\(row.device))",
            "  owner       uid \(row.uid), gid \(row.gid), pid \(row.pid); \(row.connections) connection\(row.connections == 1 ? "" : "s")",
            "  pod         \(row.pod == nil ? "none (a host process)" : terminalSafe(placement.text(of: row.id)))",
            """
              ELRANGE     0x\(String(row.base, radix: 16)) + \(bytes(row.sizeBytes)); edmmd manages \
            [0x\(String(stats.managed.offset, radix: 16)), +\(bytes(stats.managed.length)))
            """,
            "  committed   \(pageBytes(row.committedPages)) (\(row.committedPages) pages), \(row.tcsPages) TCS"
                + (stats.counters.contains { $0.name == "committed_lower_bound" && $0.value != 0 }
                    ? "; a lower bound (a host-only client: the enclave grows by EAUG edmmd never sees)" : ""),
            "  lazy pool   \(pageBytes(row.lazyPoolPages)) (\(row.lazyPoolPages) pages)",
            "  leaving     \(row.trimmingPages) trimming, \(row.removingPages) removing",
            "  quota       \(row.quotaPages.map { "\(pageBytes($0)) (\($0) pages)" } ?? "unlimited")",
            "  activity    \(row.requests) requests, \(row.ioctls) ioctls, idle \(duration(row.idleSeconds))",
            "counters",
        ]
        var table = Table([("  NAME", .left), ("VALUE", .right)])
        for counter in stats.counters where counter.value != 0 { table.rows.append(["  " + counter.name, "\(counter.value)"]) }
        lines += table.rows.isEmpty ? ["  (all zero)"] : Array(table.lines().dropFirst())
        print(lines.joined(separator: "\n"))
    }
}

/// Finds an enclave by id or label.
enum EnclaveLookup {
    static func handle(of text: String, on connection: EDMMConnection) async throws(EDMMClientError) -> EnclaveHandle {
        let all = try await connection.allEnclaves()
        if let id = EnclaveHandle(text), all.contains(where: { $0.enclave == id }) { return id }
        let labelled = all.filter { $0.label == text }
        switch labelled.count {
        case 1: return labelled[0].enclave
        case 0:
            throw .daemon(WireError(.unknownEnclave, "no enclave with id or label \"\(text)\" (edmmctl enclaves lists them)"))
        default:
            let ids = labelled.map { "\($0.enclave)" }.joined(separator: ", ")
            throw .invalidRequest("\(labelled.count) enclaves are labelled \"\(text)\" (ids \(ids)); give the id")
        }
    }
}
