import ArgumentParser
import EDMMClient
import EDMMProtocol

/// `edmmctl reclaim [ENCLAVE]` (admin): gives lazy-pool pages back to the machine.
struct ReclaimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reclaim",
        abstract: "Give lazy-pool pages back to the machine now (root or the admin group).",
        discussion: """
            edmmd trims the chosen pool pages (EMODT(TRIM)) and sends each enclave host a RECLAIM \
            notice; the host accepts the trim and the pages leave the enclave. Without ENCLAVE every \
            enclave's pool is reclaimed, least recently active first; --pages caps the total.

            --json prints {"scheduled_pages", "enclaves"}.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("An enclave id or label (default: every enclave).", valueName: "enclave"))
    var enclave: String?

    @Option(help: ArgumentHelp("Reclaim at most this many pages (default: the whole pool).", valueName: "pages"))
    var pages: UInt64 = 0

    struct Result: Encodable {
        var scheduledPages: UInt64
        var enclaves: UInt32
    }

    func run() async throws {
        let reply = try await DaemonSession.with(global) { connection throws(EDMMClientError) in
            let handle = try await enclave.asyncMap { name throws(EDMMClientError) in
                try await EnclaveLookup.handle(of: name, on: connection)
            }
            return try await connection.reclaim(enclave: handle ?? 0, targetPages: pages)
        }
        if global.json {
            print(jsonText(Result(scheduledPages: reply.scheduledPages, enclaves: reply.enclaves)))
        } else {
            print(
                """
                reclaiming \(reply.scheduledPages) pages (\(pageBytes(reply.scheduledPages))) from \(reply.enclaves) \
                enclave\(reply.enclaves == 1 ? "" : "s")
                """
            )
        }
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws(EDMMClientError) -> T) async throws(EDMMClientError) -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
