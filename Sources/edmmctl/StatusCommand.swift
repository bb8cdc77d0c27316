import ArgumentParser
import EDMMClient
import EDMMProtocol

/// `edmmctl status`: the daemon's state in one screen.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show edmmd's mode, enclaves, EPC use and activity.",
        discussion: """
            Text output names the device edmmd uses (kernel or simulated, and why), how many \
            enclaves and connections it serves, the EPC it has committed for them against the \
            machine's total, and its request and ioctl totals.

            --json prints one object with at least: "mode" ("simulated" or "kernel"), \
            "enclaves" (count) and "epc" {"total_bytes", "committed_bytes"}; also "mode_reason", \
            "daemon_version", "pid", "uptime_seconds", "connections", "epc" {"resident_bytes", \
            "under_pressure"}, "batching", "requests_total", "requests_per_second", \
            "ioctls_total" and "counters" (name: value).
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let status = try await DaemonSession.with(global) { connection throws(EDMMClientError) in try await connection.status() }
        let report = StatusReport(status)
        print(global.json ? report.json : report.text)
    }
}
