import FoundationEssentials

/// One JSON object for scripts: snake_case keys, sorted, on one line.
func jsonText<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")
    guard let data = try? encoder.encode(value) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

/// Columns padded to their widest cell; numbers right-aligned.
struct Table {
    enum Alignment { case left, right }

    var columns: [(title: String, alignment: Alignment)]
    var rows: [[String]] = []

    init(_ columns: [(String, Alignment)]) {
        self.columns = columns.map { (title: $0.0, alignment: $0.1) }
    }

    /// The header and the rows, each cut to `width` characters when given.
    func lines(width: Int? = nil) -> [String] {
        let widths = columns.indices.map { index in
            ([columns[index].title] + rows.map { index < $0.count ? $0[index] : "" }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            let padded = columns.indices.map { index -> String in
                let cell = index < cells.count ? terminalSafe(cells[index]) : ""
                let fill = String(repeating: " ", count: widths[index] - cell.count)
                return columns[index].alignment == .left ? cell + fill : fill + cell
            }
            var text = padded.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            if let width, text.count > width { text = String(text.prefix(width)) }
            return text
        }
        return [line(columns.map(\.title))] + rows.map(line)
    }
}

/// Control characters shown as "?", so that no text from the daemon can drive the terminal.
func terminalSafe(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else { return text }
    return String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? "?" : $0 }))
}
