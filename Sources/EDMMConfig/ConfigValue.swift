import TOMLKit

/// Why a value cannot be used for its key (the parser adds file, line and key).
struct ConfigValueError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Typed reads of TOML values with the error texts an operator should see.
enum ConfigValue {
    static func describe(_ value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: "the string \"\(value.string ?? "")\""
        case .int: "the integer \(value.int ?? 0)"
        case .double: "the float \(value.double ?? 0)"
        case .bool: "\(value.bool ?? false)"
        case .table: "a table"
        case .array: "an array"
        default: "a date or time"
        }
    }

    static func bool(_ value: any TOMLValueConvertible) throws(ConfigValueError) -> Bool {
        guard let b = value.bool else { throw ConfigValueError("expected true or false, got \(describe(value))") }
        return b
    }

    static func string(_ value: any TOMLValueConvertible) throws(ConfigValueError) -> String {
        guard let s = value.string else { throw ConfigValueError("expected a string, got \(describe(value))") }
        return s
    }

    static func integer<T: FixedWidthInteger>(_ value: any TOMLValueConvertible, in range: ClosedRange<T>) throws(ConfigValueError) -> T {
        guard let i = value.int else { throw ConfigValueError("expected an integer, got \(describe(value))") }
        guard let v = T(exactly: i), range.contains(v) else {
            throw ConfigValueError("\(i) is out of range; allowed \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// A chance from 0 to 1, written as a float or as 0 or 1.
    static func fraction(_ value: any TOMLValueConvertible) throws(ConfigValueError) -> Double {
        guard let d = value.double ?? value.int.map(Double.init) else {
            throw ConfigValueError("expected a number from 0 to 1, got \(describe(value))")
        }
        guard d >= 0, d <= 1 else { throw ConfigValueError("\(d) is out of range; allowed 0...1") }
        return d
    }

    static func enumeration<E: RawRepresentable & CaseIterable>(_ value: any TOMLValueConvertible, _ type: E.Type) throws(ConfigValueError)
        -> E
    where E.RawValue == String {
        let s = try string(value)
        guard let e = E(rawValue: s) else {
            throw ConfigValueError("\"\(s)\" is not one of \(E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
        }
        return e
    }

    /// A size: an integer number of bytes, or a string like "512KiB", "128M", "2Gi", "1TiB".
    /// `allowUnlimited` also accepts "unlimited" (nil).
    static func bytes(_ value: any TOMLValueConvertible, multipleOf unit: UInt64 = 1, allowUnlimited: Bool = false) throws(ConfigValueError)
        -> UInt64?
    {
        let bytes: UInt64
        if let i = value.int {
            guard i >= 0 else { throw ConfigValueError("a size cannot be negative (\(i))") }
            bytes = UInt64(i)
        } else if let s = value.string {
            if allowUnlimited && s == "unlimited" { return nil }
            do throws(SizeError) {
                bytes = try parseSize(s)
            } catch {
                throw ConfigValueError("\"\(s)\" is not a size: \(error)\(allowUnlimited ? " (or \"unlimited\")" : "")")
            }
        } else {
            throw ConfigValueError("expected a size (an integer or a string like \"128MiB\"), got \(describe(value))")
        }
        guard bytes % unit == 0 else { throw ConfigValueError("\(bytes) bytes is not a multiple of \(unit)") }
        return bytes
    }

    /// Why a text is not a size; the description says what to write instead.
    struct SizeError: Error, Equatable, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Binary units, as systemd writes them (MemoryMax=128M): K, M, G and T are powers of 1024,
    /// spelled alone, with i, or with iB. There are no decimal units (MB is refused, not
    /// guessed): Kubernetes' "128M" means 10^6 bytes, systemd's 2^20.
    static let sizeUnits: [(suffixes: [String], multiplier: UInt64)] = [
        (["B", ""], 1), (["K", "Ki", "KiB"], 1 << 10), (["M", "Mi", "MiB"], 1 << 20), (["G", "Gi", "GiB"], 1 << 30),
        (["T", "Ti", "TiB"], 1 << 40),
    ]

    /// "4096", "4096B", "512K", "128Mi", "2GiB", "1 TiB": a whole number of bytes or of a binary unit.
    static func parseSize(_ text: String) throws(SizeError) -> UInt64 {
        let trimmed = text.trimmingSpaces
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        let unit = String(trimmed.dropFirst(digits.count)).trimmingSpaces
        guard !digits.isEmpty else {
            if trimmed.isEmpty { throw SizeError("it is empty; write bytes, or a number with K, M, G or T (\"128M\", \"128MiB\")") }
            if trimmed.hasPrefix("-") { throw SizeError("a size cannot be negative") }
            throw SizeError("it does not start with a number; write e.g. \"128M\" or \"128MiB\"")
        }
        if unit.hasPrefix(".") || unit.hasPrefix(",") {
            throw SizeError("use a whole number of a smaller unit instead of a fraction (\"1536M\", not \"1.5G\")")
        }
        guard let multiplier = sizeUnits.first(where: { $0.suffixes.contains(unit) })?.multiplier else {
            let upper = unit.uppercased()
            if ["KB", "MB", "GB", "TB"].contains(upper) {
                throw SizeError(
                    """
                    \"\(unit)\" is ambiguous (1000 or 1024?); edmmd's units are binary: write \"\(digits)\(upper.prefix(1))\" or \
                    \"\(digits)\(upper.prefix(1))iB\"
                    """
                )
            }
            if let known = sizeUnits.flatMap(\.suffixes).first(where: { !$0.isEmpty && $0.uppercased() == upper }) {
                throw SizeError("unknown unit \"\(unit)\"; units are case-sensitive: \"\(digits)\(known)\"")
            }
            throw SizeError("unknown unit \"\(unit)\"; use B, K, M, G or T (alone, with i, or with iB: 128M = 128Mi = 128MiB)")
        }
        guard let number = UInt64(digits) else { throw SizeError("\(digits) is too large") }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw SizeError("\(trimmed) is more than 16 EiB") }
        return product
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
