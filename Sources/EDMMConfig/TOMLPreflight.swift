/// Checks, line by line, that a document uses only the part of TOML edmmd's configuration needs,
/// before TOMLKit sees it.
///
/// TOMLKit 0.6.0 bundles a toml++ whose parser trips C++ `assert`s — aborting the process — on
/// malformed input such as `[=`, `[[=` or `a=[}` (tomlplusplus#301 and neighbours; fixed upstream,
/// not in the version here). A typo in /etc/edmmd/edmmd.toml followed by `systemctl reload` must
/// be an error message, not a dead daemon. The configuration needs only `[section]` headers and
/// `key = scalar` lines, so everything else (arrays, inline tables, multi-line strings, arrays of
/// tables) is refused here with a precise message, and what reaches toml++ is a shape it parses
/// safely (the ConfigFuzz target checks this).
enum TOMLPreflight {
    /// The first line outside the accepted subset, 1-based, with what is wrong with it.
    static func firstProblem(in text: String) -> (line: Int, message: String)? {
        var text = Substring(text)
        if text.hasPrefix("\u{FEFF}") { text = text.dropFirst() }
        var lineNumber = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            var line = Cursor(raw)
            line.skipBlanks()
            let problem: String?
            if line.atEnd || line.peek == "#" {
                problem = nil
            } else if line.peek == "[" {
                problem = header(&line)
            } else {
                problem = keyValue(&line)
            }
            if let problem { return (lineNumber, problem) }
        }
        return nil
    }

    private static func header(_ line: inout Cursor) -> String? {
        line.advance()
        if line.peek == "[" { return "arrays of tables ([[...]]) are not used in edmmd's configuration" }
        if let problem = key(&line, context: "table header") { return problem }
        line.skipBlanks()
        guard line.peek == "]" else { return "table header must end with ']'" }
        line.advance()
        return trailer(&line, after: "table header")
    }

    private static func keyValue(_ line: inout Cursor) -> String? {
        if let problem = key(&line, context: "key") { return problem }
        line.skipBlanks()
        guard line.peek == "=" else { return "expected '=' after the key" }
        line.advance()
        line.skipBlanks()
        guard let c = line.peek else { return "missing value after '='" }
        switch c {
        case "\"", "'":
            if let problem = string(&line) { return problem }
        case "[":
            return "arrays are not used in edmmd's configuration"
        case "{":
            return "inline tables are not used in edmmd's configuration; write a [section] instead"
        default:
            let word = line.take { $0.isASCII && ($0.isLetter || $0.isNumber || "+-_.:".contains($0)) }
            guard !word.isEmpty else { return "unexpected '\(c)' where a value should be" }
        }
        return trailer(&line, after: "value")
    }

    /// Bare keys (`A-Za-z0-9_-`) and quoted keys, joined by dots.
    private static func key(_ line: inout Cursor, context: String) -> String? {
        while true {
            line.skipBlanks()
            guard let c = line.peek else { return "\(context) ends where a key should be" }
            if c == "\"" || c == "'" {
                if let problem = string(&line) { return problem }
            } else {
                let bare = line.take { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
                guard !bare.isEmpty else { return "\(context) needs a key, found '\(c)'" }
            }
            line.skipBlanks()
            guard line.peek == "." else { return nil }
            line.advance()
        }
    }

    /// A one-line basic ("...", with backslash escapes) or literal ('...') string.
    private static func string(_ line: inout Cursor) -> String? {
        guard let quote = line.peek else { return "missing string" }
        if line.hasPrefix(String(repeating: quote, count: 3)) { return "multi-line strings are not used in edmmd's configuration" }
        line.advance()
        while let c = line.peek {
            line.advance()
            if c == quote { return nil }
            if c == "\\" && quote == "\"" {
                guard line.peek != nil else { break }
                line.advance()
            }
        }
        return "unterminated string"
    }

    private static func trailer(_ line: inout Cursor, after what: String) -> String? {
        line.skipBlanks()
        guard line.atEnd || line.peek == "#" else { return "unexpected text after the \(what)" }
        return nil
    }

    private struct Cursor {
        private var rest: Substring
        init(_ line: Substring) { rest = line }
        var atEnd: Bool { rest.isEmpty }
        var peek: Character? { rest.first }
        func hasPrefix(_ s: String) -> Bool { rest.hasPrefix(s) }
        mutating func advance() { rest = rest.dropFirst() }
        mutating func skipBlanks() { rest = rest.drop { $0 == " " || $0 == "\t" } }
        mutating func take(while predicate: (Character) -> Bool) -> Substring {
            let taken = rest.prefix(while: predicate)
            rest = rest.dropFirst(taken.count)
            return taken
        }
    }
}
