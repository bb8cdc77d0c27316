import SystemPackage
import TOMLKit

/// Every problem found in one configuration file, in line order.
public struct ConfigErrors: Error, Equatable, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]
    public init(_ errors: [ConfigError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension DaemonConfig {
    /// Reads and strictly parses a configuration file. Unknown sections and keys, values of the
    /// wrong type or out of range, and inconsistent combinations are all errors with file:line.
    public static func load(path: String) throws(ConfigErrors) -> DaemonConfig {
        let text: String
        do {
            text = try readFile(path)
        } catch {
            throw ConfigErrors([ConfigError(file: path, line: nil, message: "cannot read: \(error)")])
        }
        return try parse(toml: text, fileName: path)
    }

    public static func parse(toml text: String, fileName: String) throws(ConfigErrors) -> DaemonConfig {
        if let bad = TOMLPreflight.firstProblem(in: text) {
            throw ConfigErrors([ConfigError(file: fileName, line: bad.line, message: "syntax error: \(bad.message)")])
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigErrors([ConfigError(file: fileName, line: error.source.begin.line, message: "syntax error: \(error.description)")])
        } catch {
            throw ConfigErrors([ConfigError(file: fileName, line: nil, message: "syntax error: \(error)")])
        }
        var parser = Parser(fileName: fileName, locator: SourceLocator(text))
        parser.walk(root)
        if parser.errors.isEmpty { parser.checkCombinations() }
        guard parser.errors.isEmpty else {
            throw ConfigErrors(parser.errors.sorted { ($0.line ?? 0) < ($1.line ?? 0) })
        }
        return parser.config
    }

    private static func readFile(_ path: String) throws -> String {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec)
        defer { try? fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= 1 << 20 else { throw ConfigValueError("larger than 1 MiB; this is not a configuration file") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ConfigValueError("not valid UTF-8") }
        return text
    }
}

extension ConfigValueError: CustomStringConvertible {
    var description: String { message }
}

private struct Parser {
    let fileName: String
    let locator: SourceLocator
    var config = DaemonConfig()
    var errors: [ConfigError] = []

    init(fileName: String, locator: SourceLocator) {
        self.fileName = fileName
        self.locator = locator
    }

    static let sections: [String] = {
        var seen: [String] = []
        for key in ConfigSchema.keys where !seen.contains(key.section) { seen.append(key.section) }
        return seen
    }()

    mutating func walk(_ root: TOMLTable) {
        for (section, value) in root {
            guard let table = value.table else {
                fail(
                    [section],
                    """
                    '\(section)' must be a section such as [\(Self.suggest(section, from: Self.sections) ?? "daemon")], not a top-level \
                    key
                    """
                )
                continue
            }
            guard Self.sections.contains(section) else {
                fail(
                    [section],
                    """
                    unknown section [\(section)]\(Self.hint(section, Self.sections)); sections are \
                    \(Self.sections.map { "[\($0)]" }.joined(separator: ", "))
                    """
                )
                continue
            }
            for (name, value) in table {
                let path = [section, name]
                if path == ConfigSchema.uidOverridesPath {
                    applyUIDOverrides(value)
                    continue
                }
                let names = ConfigSchema.keys.filter { $0.section == section }.map(\.name)
                guard let key = ConfigSchema.keys.first(where: { $0.section == section && $0.name == name }) else {
                    fail(path, "unknown key '\(name)' in [\(section)]\(Self.hint(name, names))")
                    continue
                }
                do {
                    try key.apply(&config, value)
                } catch {
                    fail(path, "[\(section)] \(name): \(error.message)")
                }
            }
        }
        // Per-enclave series are opt-in on Kubernetes nodes: the per-container ones are the view there.
        if config.kubernetes.enabled, root["metrics"]?.table?["per_enclave"] == nil { config.metrics.perEnclave = false }
    }

    mutating func applyUIDOverrides(_ value: any TOMLValueConvertible) {
        let path = ConfigSchema.uidOverridesPath
        guard let table = value.table else {
            fail(path, "[quota.uid_overrides] must be a table of uid = size, e.g. 1000 = \"512MiB\"")
            return
        }
        for (uidText, size) in table {
            guard let uid = UInt32(uidText) else {
                fail(path + [uidText], "[quota.uid_overrides] '\(uidText)' is not a numeric uid")
                continue
            }
            do {
                config.quota.uidOverrides[uid] = try ConfigValue.bytes(size, multipleOf: 4096, allowUnlimited: true) ?? .max
            } catch {
                fail(path + [uidText], "[quota.uid_overrides] \(uidText): \(error.message)")
            }
        }
    }

    mutating func checkCombinations() {
        if config.pressure.lowWatermarkPercent >= config.pressure.highWatermarkPercent {
            fail(
                ["pressure", "low_watermark_percent"],
                """
                [pressure] low_watermark_percent (\(config.pressure.lowWatermarkPercent)) must be below high_watermark_percent \
                (\(config.pressure.highWatermarkPercent))
                """
            )
        }
        if config.growth.minChunkPages > config.growth.maxChunkPages {
            fail(
                ["growth", "min_chunk_pages"],
                "[growth] min_chunk_pages (\(config.growth.minChunkPages)) must not exceed max_chunk_pages (\(config.growth.maxChunkPages))"
            )
        }
    }

    mutating func fail(_ path: [String], _ message: String) {
        errors.append(ConfigError(file: fileName, line: locator.line(of: path), message: message))
    }

    static func hint(_ word: String, _ candidates: [String]) -> String {
        suggest(word, from: candidates).map { "; did you mean '\($0)'?" } ?? ""
    }

    /// The closest candidate within an edit distance of 3, for "did you mean".
    static func suggest(_ word: String, from candidates: [String]) -> String? {
        candidates.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= 3 }.min { $0.1 < $1.1 }?.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
