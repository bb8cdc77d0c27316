/// A label set rendered once in the text format (`a="x",b="y"`, values escaped), so that the
/// series of one enclave share it instead of re-escaping its label for every family.
struct LabelSet: Sendable {
    static let empty = LabelSet([])

    let rendered: [UInt8]

    init(_ pairs: [(String, String)]) {
        var bytes: [UInt8] = []
        for (index, (name, value)) in pairs.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += name.utf8
            bytes += #"=""#.utf8
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): bytes += #"\\"#.utf8
                case UInt8(ascii: "\""): bytes += #"\""#.utf8
                case UInt8(ascii: "\n"): bytes += #"\n"#.utf8
                default: bytes.append(byte)
                }
            }
            bytes.append(UInt8(ascii: "\""))
        }
        rendered = bytes
    }

    private init(rendered: [UInt8]) { self.rendered = rendered }

    /// This set followed by `pairs`.
    func appending(_ pairs: [(String, String)]) -> LabelSet {
        guard !pairs.isEmpty else { return self }
        let more = LabelSet(pairs).rendered
        return LabelSet(rendered: rendered.isEmpty ? more : rendered + [UInt8(ascii: ",")] + more)
    }
}

/// The Prometheus text format (0.0.4) of series computed at scrape time (a collector, in
/// Prometheus' terms): one family at a time, its HELP and TYPE first, then its samples. A family
/// with no sample keeps its HELP and TYPE, so every scrape names every family it can export.
struct ExpositionWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func family(_ spec: MetricSpec) {
        bytes += "# HELP \(spec.name) ".utf8
        for byte in spec.help.utf8 {
            if byte == UInt8(ascii: "\\") { bytes += #"\\"#.utf8 } else { bytes.append(byte) }
        }
        bytes += "\n# TYPE \(spec.name) \(spec.kind.rawValue)\n".utf8
    }

    mutating func sample(_ spec: MetricSpec, _ labels: LabelSet = .empty, _ value: UInt64) {
        series(spec, labels)
        appendDecimal(value)
        bytes.append(UInt8(ascii: "\n"))
    }

    mutating func sample(_ spec: MetricSpec, _ labels: LabelSet = .empty, real value: Double) {
        series(spec, labels)
        switch value {
        case .infinity: bytes += "+Inf".utf8
        case -.infinity: bytes += "-Inf".utf8
        case _ where value.isNaN: bytes += "NaN".utf8
        case _ where value == value.rounded() && abs(value) < 1e15: appendDecimal(UInt64(abs(value)), negative: value < 0)
        default: bytes += "\(value)".utf8
        }
        bytes.append(UInt8(ascii: "\n"))
    }

    /// A family and its one unlabelled sample.
    mutating func single(_ spec: MetricSpec, _ value: UInt64) {
        family(spec)
        sample(spec, .empty, value)
    }

    mutating func append(_ other: [UInt8]) { bytes += other }

    private mutating func series(_ spec: MetricSpec, _ labels: LabelSet) {
        bytes += spec.name.utf8
        if !labels.rendered.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            bytes += labels.rendered
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: " "))
    }

    private mutating func appendDecimal(_ value: UInt64, negative: Bool = false) {
        if negative { bytes.append(UInt8(ascii: "-")) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            var rest = value
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            bytes += digits[start..<20]
        }
    }
}
