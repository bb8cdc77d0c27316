import ArgumentParser
import EDMMClient

/// `edmmctl metrics`: the Prometheus exposition, over the control socket.
struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the Prometheus text exposition, as GET /metrics serves it.",
        discussion: """
            Works without the HTTP endpoint (--metrics "" or no [metrics] listen): the text comes \
            over the control socket. The output is the Prometheus text format whatever --json says; \
            pipe it to `promtool check metrics` or grep it.
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let text = try await DaemonSession.with(global) { connection throws(EDMMClientError) in try await connection.metricsText() }
        print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
    }
}
