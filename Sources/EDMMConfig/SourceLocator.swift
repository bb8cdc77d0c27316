/// Maps dotted key paths to the line that defines them, so errors about values (which TOMLKit
/// reports without positions) can name their line. It reads only the shapes a config file uses:
/// `[table]` headers, `[a.b]` / `[a."b"]` headers and `key = value` lines with bare, quoted or
/// dotted keys. A path it cannot place falls back to its nearest placed ancestor.
struct SourceLocator {
    private var lines: [String: Int] = [:]

    init(_ text: String) {
        var table: [String] = []
        var lineNumber = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            let line = Self.stripComment(String(raw)).trimmingSpaces
            if line.hasPrefix("[") {
                let inner = line.drop { $0 == "[" }.reversed().drop { $0 == "]" }.reversed()
                table = Self.splitKey(String(inner))
                record(table, lineNumber)
            } else if let eq = Self.assignmentIndex(line) {
                record(table + Self.splitKey(String(line[..<eq])), lineNumber)
            }
        }
    }

    func line(of path: [String]) -> Int? {
        var path = path
        while !path.isEmpty {
            if let line = lines[path.joined(separator: "\u{1F}")] { return line }
            path.removeLast()
        }
        return nil
    }

    private mutating func record(_ path: [String], _ line: Int) {
        let key = path.joined(separator: "\u{1F}")
        if lines[key] == nil { lines[key] = line }
    }

    /// The `=` of an assignment, outside quotes.
    private static func assignmentIndex(_ line: String) -> String.Index? {
        var quote: Character? = nil
        for i in line.indices {
            let c = line[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "=" {
                return i
            }
        }
        return nil
    }

    private static func stripComment(_ line: String) -> String {
        var quote: Character? = nil
        for i in line.indices {
            let c = line[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "#" {
                return String(line[..<i])
            }
        }
        return line
    }

    /// `a."b.c" . d` → ["a", "b.c", "d"].
    static func splitKey(_ key: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var quote: Character? = nil
        for c in key {
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "." {
                parts.append(current.trimmingSpaces)
                current = ""
            } else {
                current.append(c)
            }
        }
        parts.append(current.trimmingSpaces)
        return parts
    }
}
