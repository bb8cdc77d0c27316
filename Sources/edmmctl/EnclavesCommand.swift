import ArgumentParser
import EDMMClient
import EDMMProtocol
import Glibc

/// `edmmctl enclaves`: one row per enclave.
struct EnclavesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enclaves",
        abstract: "List the enclaves edmmd manages, one row each.",
        discussion: """
            Owners see their own enclaves; root and edmmd's admin group see every enclave. Sizes \
            are shown in bytes (pages are 4 KiB): COMMITTED pages in use, POOL freed pages kept in \
            the lazy-free pool, TRIMMING pages on their way out, QUOTA the enclave's limit. The \
            COMMITTED figure of a host-only client's enclave (libedmm-interpose) is a lower bound: \
            a note under the table says how many there are, and `edmmctl show` marks each.

            --json prints {"enclaves": [...]}, one object per enclave with "id", "label", "uid", \
            "gid", "pid", "device", "base", "size_bytes", "committed_pages", "lazy_pool_pages", \
            "trimming_pages", "removing_pages", "tcs_pages", "quota_pages" (null: unlimited), \
            "connections", "requests", "ioctls", "idle_seconds", and "namespace", "pod" and \
            "container" (null for a host enclave; edmmd in Kubernetes mode, docs/kubernetes.md).
            The POD column (namespace/pod/container) appears when some enclave is in a pod.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Order of the rows: amounts largest first, id and label ascending.", valueName: "key"))
    var sort: EnclaveSort = .id

    struct Listing: Encodable { var enclaves: [EnclaveRow] }

    func run() async throws {
        let (summaries, scopes, status) = try await DaemonSession.with(global) { connection throws(EDMMClientError) in
            (try await connection.allEnclaves(), try await connection.allScopes(), try await connection.status())
        }
        let placement = ScopePlacement(scopes)
        let rows = sort.sorted(summaries).map { EnclaveRow($0, placement: placement) }
        if global.json {
            print(jsonText(Listing(enclaves: rows)))
            return
        }
        guard !rows.isEmpty else {
            print("no enclaves registered (or none visible to uid \(getuid()))")
            return
        }
        let showPods = rows.contains { $0.pod != nil }
        var table = Table(
            [("ID", .right), ("LABEL", .left)] + (showPods ? [("POD", .left)] : []) + [
                ("UID", .right), ("PID", .right), ("COMMITTED", .right), ("POOL", .right), ("TRIMMING", .right), ("TCS", .right),
                ("QUOTA", .right), ("CONN", .right), ("REQUESTS", .right), ("IOCTLS", .right), ("IDLE", .right),
            ])
        for row in rows {
            table.rows.append(
                ["\(row.id)", row.label] + (showPods ? [placement.text(of: row.id)] : []) + [
                    "\(row.uid)", "\(row.pid)", pageBytes(row.committedPages), pageBytes(row.lazyPoolPages),
                    pageBytes(row.trimmingPages + row.removingPages), "\(row.tcsPages)", row.quotaPages.map(pageBytes) ?? "-",
                    "\(row.connections)", "\(row.requests)", "\(row.ioctls)", duration(row.idleSeconds),
                ])
        }
        print(table.lines().joined(separator: "\n"))
        let lowerBounds = status.counters.first { $0.name == "enclaves_committed_lower_bound" }?.value ?? 0
        if lowerBounds > 0 {
            print(
                """
                \(lowerBounds) of the enclaves belong to host-only clients (libedmm-interpose): their COMMITTED is a lower bound, \
                since they grow by EAUG edmmd never sees (edmmctl show marks them)
                """)
        }
    }
}

/// How enclave tables are ordered.
enum EnclaveSort: String, CaseIterable, ExpressibleByArgument {
    case id, label, committed, pool, requests, ioctls

    /// Largest first for amounts; ascending for id and label. Ties keep id order.
    func sorted(_ enclaves: [EnclaveSummary]) -> [EnclaveSummary] {
        enclaves.sorted { a, b in
            switch self {
            case .id: a.enclave < b.enclave
            case .label: (a.label, a.enclave) < (b.label, b.enclave)
            case .committed: (b.committedPages, a.enclave) < (a.committedPages, b.enclave)
            case .pool: (b.pooledPages, a.enclave) < (a.pooledPages, b.enclave)
            case .requests: (b.requests, a.enclave) < (a.requests, b.enclave)
            case .ioctls: (b.ioctls, a.enclave) < (a.ioctls, b.enclave)
            }
        }
    }
}
