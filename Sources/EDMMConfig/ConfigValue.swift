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

    static func enumeration<E: RawRepresentable & CaseIterable>(_ value: any TOMLValueConvertible, _ type: E.Type) throws(ConfigValueError) -> E
    where E.RawValue == String {
        let s = try string(value)
        guard let e = E(rawValue: s) else {
            throw ConfigValueError("\"\(s)\" is not one of \(E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
        }
        return e
    }

    /// A size: an integer number of bytes, or a string like "512KiB", "128MiB", "2GiB", "1TiB".
    /// `allowUnlimited` also accepts "unlimited" (nil).
    static func bytes(_ value: any TOMLValueConvertible, multipleOf unit: UInt64 = 1, allowUnlimited: Bool = false) throws(ConfigValueError) -> UInt64? {
        let bytes: UInt64
        if let i = value.int {
            guard i >= 0 else { throw ConfigValueError("a size cannot be negative (\(i))") }
            bytes = UInt64(i)
        } else if let s = value.string {
            if allowUnlimited && s == "unlimited" { return nil }
            guard let parsed = parseSize(s) else {
                throw ConfigValueError("\"\(s)\" is not a size; write bytes as an integer or a number with KiB, MiB, GiB or TiB\(allowUnlimited ? ", or \"unlimited\"" : "")")
            }
            bytes = parsed
        } else {
            throw ConfigValueError("expected a size (an integer or a string like \"128MiB\"), got \(describe(value))")
        }
        guard bytes % unit == 0 else { throw ConfigValueError("\(bytes) bytes is not a multiple of \(unit)") }
        return bytes
    }

    static func parseSize(_ text: String) -> UInt64? {
        let units: [(String, UInt64)] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)]
        let trimmed = text.trimmingSpaces
        for (suffix, multiplier) in units where trimmed.hasSuffix(suffix) {
            let number = String(trimmed.dropLast(suffix.count)).trimmingSpaces
            guard let n = UInt64(number) else { return nil }
            let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : product
        }
        return UInt64(trimmed)
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
