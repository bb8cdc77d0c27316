import ArgumentParser
import EDMMClient

/// `edmmctl reload` (admin): edmmd re-reads its configuration file.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Make edmmd re-read its configuration file (root or the admin group).",
        discussion: """
            The same as `systemctl reload edmmd` (SIGHUP), but answered: edmmd applies what can \
            change at run time and names what needs a restart; an invalid file is refused and the \
            old configuration kept (exit status 1, with the file's problems).

            --json prints {"summary"}.
            """)

    @OptionGroup var global: GlobalOptions

    struct Result: Encodable { var summary: String }

    func run() async throws {
        let reply = try await DaemonSession.with(global) { connection throws(EDMMClientError) in try await connection.reload() }
        print(global.json ? jsonText(Result(summary: reply.summary)) : "reloaded \(reply.summary)")
    }
}
