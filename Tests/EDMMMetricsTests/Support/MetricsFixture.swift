import EDMMClient
import EDMMConfig
import EDMMDaemon
import EDMMMetrics
import EDMMSimHost
import Glibc
import Logging

/// An edmmd in the test process on a 16 MiB simulated EPC, wired to a `MetricsExporter` as
/// edmmd wires it, with its control socket in a fresh temporary directory.
final class MetricsFixture: @unchecked Sendable {
    let exporter = MetricsExporter()
    let daemon: Daemon
    let directory: String
    let socketPath: String

    /// `wire` adjusts the daemon's options (an FD store, a configuration file to reload).
    init(_ configure: (inout DaemonConfig) -> Void = { _ in }, wire: (inout DaemonOptions) -> Void = { _ in }) throws {
        var template = Array("/tmp/edmm-metrics-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw FixtureError("mkdtemp: errno \(errno)") }
        directory = String(cString: made)
        socketPath = directory + "/ctl.sock"
        var config = DaemonConfig()
        config.daemon.socket = socketPath
        config.daemon.device = .simulated
        config.simulator.epcBytes = 16 << 20
        config.simulator.maxEnclaves = 64
        configure(&config)
        let level = SharedLogLevel(.warning)
        var options = DaemonOptions(
            logger: Logger(label: "edmmd-metrics-test") { StandardErrorLogHandler(label: $0, level: level) }, logLevel: level)
        let exporter = self.exporter
        options.instruments = exporter.instruments
        options.metricsText = { exporter.renderText(for: $0) }
        wire(&options)
        daemon = try Daemon(config: config, options: options)
        exporter.attach(daemon)
        try daemon.start()
    }

    /// A simulated enclave host registered with the daemon (64 MiB ELRANGE, replies awaited).
    func host(_ label: String) async throws -> SimulatedEnclaveHost {
        try await SimulatedEnclaveHost.launch(
            socketPath: socketPath, blueprint: EnclaveBlueprint(label: label, size: 1 << 26, fireAndForget: false),
            clientName: "metrics-test \(label)")
    }

    func connect() async throws -> EDMMConnection {
        try await EDMMConnection.connect(socketPath: socketPath, clientName: "metrics-test")
    }

    func stop() async {
        await daemon.shutdown(drainTimeout: .seconds(2))
        unlink(socketPath)
        rmdir(directory)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A parsed text exposition: every sample by its name and labels.
struct Exposition {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []
    /// `# TYPE` by family name.
    var types: [String: String] = [:]
    var helps: Set<String> = []

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            if line.hasPrefix("# HELP ") {
                let parts = line.split(separator: " ", maxSplits: 3)
                if parts.count >= 3 { helps.insert(String(parts[2])) }
                continue
            }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else {
                samples.append(Sample(name: String(series), labels: [:], value: value))
                continue
            }
            var labels: [String: String] = [:]
            // name="value" pairs; values escape \\, \" and \n.
            var rest = Substring(series[series.index(after: brace)..<series.index(before: series.endIndex)])
            while let equals = rest.firstIndex(of: "=") {
                let name = String(rest[..<equals]).trimmingPrefix(",")
                var value = ""
                var index = rest.index(equals, offsetBy: 2)
                while index < rest.endIndex, rest[index] != "\"" {
                    if rest[index] == "\\" {
                        index = rest.index(after: index)
                        value.append(rest[index] == "n" ? "\n" : rest[index])
                    } else {
                        value.append(rest[index])
                    }
                    index = rest.index(after: index)
                }
                labels[String(name)] = value
                rest = rest[rest.index(after: index)...]
            }
            samples.append(Sample(name: String(series[..<brace]), labels: labels, value: value))
        }
    }

    /// The samples of `name` whose labels include `labels`.
    func values(_ name: String, _ labels: [String: String] = [:]) -> [Double] {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }.map(\.value)
    }

    /// The one sample of `name` with `labels`; nil if there is none or several.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let found = values(name, labels)
        return found.count == 1 ? found[0] : nil
    }
}
