import ArgumentParser
import EDMMClient

/// `edmmctl metrics`: the Prometheus exposition, over the control socket.
struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the Prometheus text exposition, as GET /metrics serves it.",
        discussion: """
            Works without the HTTP endpoint (--metrics "" or no [metrics] listen): the text comes \
            over the control socket. Pipe it to `promtool check metrics` or grep it. Unlike \
            /metrics, which every local user can read, it shows a user that is neither root nor in \
            edmmd's admin group only the series of its own uid's enclaves (and the machine-wide ones).

            --json prints {"families": [{"name", "type", "help", "samples": [{"name", "labels", \
            "value"}]}]}, one family per metric in the exposition's order; a histogram's samples \
            are its _bucket, _sum and _count series.
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let text = try await DaemonSession.with(global) { connection throws(EDMMClientError) in try await connection.metricsText() }
        if global.json {
            print(jsonText(Exposition(parsing: text)))
        } else {
            print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
        }
    }
}

/// The text format (0.0.4) as JSON: what `metrics --json` prints.
struct Exposition: Encodable {
    struct Family: Encodable {
        var name: String
        var type: String
        var help: String
        var samples: [Sample] = []
    }

    struct Sample: Encodable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var families: [Family] = []

    /// Reads HELP, TYPE and sample lines; a sample belongs to the family named by the last TYPE
    /// line whose name it extends (`x_bucket` to `x`). Lines that are neither are skipped.
    init(parsing text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                guard parts.count >= 3 else { continue }
                let name = String(parts[2])
                let rest = parts.count > 3 ? String(parts[3]) : ""
                if families.last?.name != name { families.append(Family(name: name, type: "untyped", help: "")) }
                if line.hasPrefix("# HELP ") {
                    families[families.count - 1].help = Self.unescape(rest)
                } else {
                    families[families.count - 1].type = rest
                }
                continue
            }
            guard !line.hasPrefix("#"), let sample = Self.sample(line) else { continue }
            if let family = families.last, sample.name == family.name || sample.name.hasPrefix(family.name + "_") {
                families[families.count - 1].samples.append(sample)
            } else {
                families.append(Family(name: sample.name, type: "untyped", help: "", samples: [sample]))
            }
        }
    }

    /// `name{a="x",b="y"} value`, label values escaped with \\, \" and \n.
    private static func sample(_ line: Substring) -> Sample? {
        var labels: [String: String] = [:]
        var index = line.startIndex
        while index < line.endIndex, line[index] != "{", line[index] != " " { index = line.index(after: index) }
        let name = String(line[..<index])
        if index < line.endIndex, line[index] == "{" {
            index = line.index(after: index)
            while index < line.endIndex, line[index] != "}" {
                guard let equals = line[index...].firstIndex(of: "=") else { return nil }
                let label = line[index..<equals].trimmingPrefix(",")
                index = line.index(after: equals)
                guard index < line.endIndex, line[index] == "\"" else { return nil }
                index = line.index(after: index)
                var value = ""
                while index < line.endIndex, line[index] != "\"" {
                    if line[index] == "\\", line.index(after: index) < line.endIndex {
                        index = line.index(after: index)
                        value.append(line[index] == "n" ? "\n" : line[index])
                    } else {
                        value.append(line[index])
                    }
                    index = line.index(after: index)
                }
                guard index < line.endIndex else { return nil }
                labels[String(label)] = value
                index = line.index(after: index)
                if index < line.endIndex, line[index] == "," { index = line.index(after: index) }
            }
            guard index < line.endIndex else { return nil }
            index = line.index(after: index)
        }
        let fields = line[index...].split(separator: " ")
        guard let first = fields.first, let value = Self.number(first) else { return nil }
        return Sample(name: name, labels: labels, value: value)
    }

    private static func number(_ text: Substring) -> Double? {
        switch text {
        case "+Inf": .infinity
        case "-Inf": -.infinity
        case "NaN": .nan
        default: Double(text)
        }
    }

    private static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var result = ""
        var escaped = false
        for character in text {
            if escaped {
                result.append(character == "n" ? "\n" : character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        return result
    }
}
