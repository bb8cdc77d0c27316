/// A Kubernetes resource quantity (`64Mi`, `1Gi`, `500M`, `0.5Gi`, `1e9`, `98566144`) read
/// exactly, as bytes. The grammar is the API's (`k8s.io/apimachinery` resource.Quantity,
/// documented in the Kubernetes API reference under "Quantity"):
///
///     quantity     ::= signedNumber suffix
///     signedNumber ::= [+-] digits | [+-] digits . digits | [+-] . digits | [+-] digits .
///     suffix       ::= binarySI | decimalSI | decimalExponent
///     binarySI     ::= Ki | Mi | Gi | Ti | Pi | Ei
///     decimalSI    ::= n | u | m | "" | k | M | G | T | P | E
///     decimalExponent ::= e signedInteger | E signedInteger
///
/// No floating point is involved: the value is an exact rational, and like the API's
/// `Quantity.Value()` a fraction of a byte rounds up (`500m` is 1 byte). Negative quantities,
/// and ones past 2^63 - 1 (the API's own ceiling), are refused.
public enum KubernetesQuantity {
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var text: String
        public var reason: String
        public init(text: String, reason: String) {
            self.text = text
            self.reason = reason
        }

        public var description: String { "\"\(text)\" is not a Kubernetes quantity of bytes: \(reason)" }
    }

    /// The largest value the API represents (int64).
    public static let maximum = UInt64(Int64.max)

    /// The quantity in bytes, rounded up to a whole byte.
    public static func bytes(_ text: String) throws(ParseError) -> UInt64 {
        func fail(_ reason: String) -> ParseError { ParseError(text: String(text.prefix(80)), reason: reason) }
        // Annotation values are short; a bound keeps the exact arithmetic below small.
        guard text.utf8.count <= 64 else { throw fail("longer than 64 characters") }
        var rest = Substring(text)
        let negative = rest.first == "-"
        if rest.first == "+" || rest.first == "-" { rest = rest.dropFirst() }
        let number = rest.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
        let suffix = rest[number.endIndex...]
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        let fraction = parts.count > 1 ? parts[1] : ""
        guard !(whole.isEmpty && fraction.isEmpty) else { throw fail("no digits") }
        guard !fraction.contains(".") else { throw fail("more than one decimal point") }
        // value = digits × 10^(exponent10 - fraction digits) × 2^exponent2
        var (exponent10, exponent2) = (0, 0)
        switch suffix {
        case "Ki": exponent2 = 10
        case "Mi": exponent2 = 20
        case "Gi": exponent2 = 30
        case "Ti": exponent2 = 40
        case "Pi": exponent2 = 50
        case "Ei": exponent2 = 60
        case "n": exponent10 = -9
        case "u": exponent10 = -6
        case "m": exponent10 = -3
        case "": exponent10 = 0
        case "k": exponent10 = 3
        case "M": exponent10 = 6
        case "G": exponent10 = 9
        case "T": exponent10 = 12
        case "P": exponent10 = 15
        case "E": exponent10 = 18
        default:
            guard suffix.first == "e" || suffix.first == "E", let exponent = Int(suffix.dropFirst()) else {
                throw fail("unknown suffix \"\(suffix)\" (Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>)")
            }
            guard (-100...100).contains(exponent) else { throw fail("exponent \(exponent) out of range") }
            exponent10 = exponent
        }
        exponent10 -= fraction.count
        var numerator = Natural(decimalDigits: whole + fraction)
        guard !numerator.isZero else { return 0 }
        guard !negative else { throw fail("negative") }
        numerator.multiply(byPowerOf: 2, exponent2)
        var denominator = Natural(1)
        if exponent10 >= 0 { numerator.multiply(byPowerOf: 10, exponent10) } else { denominator.multiply(byPowerOf: 10, -exponent10) }
        // The least whole x with x × denominator >= numerator, found bit by bit from the top.
        guard !(Natural(maximum).times(denominator) < numerator) else { throw fail("larger than \(maximum) bytes") }
        var value: UInt64 = 0
        for bit in stride(from: 62, through: 0, by: -1) {
            let candidate = value | (1 << UInt64(bit))
            if Natural(candidate - 1).times(denominator) < numerator { value = candidate }
        }
        // `value` is now the largest x with (x - 1) × denominator < numerator, i.e. the ceiling.
        return value == 0 ? 1 : value
    }
}

/// Just enough of an unbounded natural number for exact quantities: little-endian 32-bit limbs.
struct Natural: Comparable {
    private(set) var limbs: [UInt32]

    init(_ value: UInt64) {
        limbs = [UInt32(truncatingIfNeeded: value), UInt32(truncatingIfNeeded: value >> 32)]
        normalise()
    }

    init<S: StringProtocol>(decimalDigits: S) {
        self.init(0)
        for digit in decimalDigits.utf8 {
            multiply(by: 10)
            add(UInt32(digit - UInt8(ascii: "0")))
        }
    }

    var isZero: Bool { limbs.isEmpty }

    mutating func multiply(by factor: UInt32) {
        var carry: UInt64 = 0
        for index in limbs.indices {
            let product = UInt64(limbs[index]) * UInt64(factor) + carry
            limbs[index] = UInt32(truncatingIfNeeded: product)
            carry = product >> 32
        }
        if carry > 0 { limbs.append(UInt32(carry)) }
        normalise()
    }

    mutating func multiply(byPowerOf base: UInt32, _ exponent: Int) {
        for _ in 0..<exponent { multiply(by: base) }
    }

    mutating func add(_ value: UInt32) {
        var carry = UInt64(value)
        var index = 0
        while carry > 0 {
            if index == limbs.count { limbs.append(0) }
            let sum = UInt64(limbs[index]) + carry
            limbs[index] = UInt32(truncatingIfNeeded: sum)
            carry = sum >> 32
            index += 1
        }
    }

    func times(_ other: Natural) -> Natural {
        var result = [UInt32](repeating: 0, count: limbs.count + other.limbs.count + 1)
        for (i, a) in limbs.enumerated() {
            var carry: UInt64 = 0
            for (j, b) in other.limbs.enumerated() {
                let sum = UInt64(a) * UInt64(b) + UInt64(result[i + j]) + carry
                result[i + j] = UInt32(truncatingIfNeeded: sum)
                carry = sum >> 32
            }
            var k = i + other.limbs.count
            while carry > 0 {
                let sum = UInt64(result[k]) + carry
                result[k] = UInt32(truncatingIfNeeded: sum)
                carry = sum >> 32
                k += 1
            }
        }
        var natural = Natural(0)
        natural.limbs = result
        natural.normalise()
        return natural
    }

    private mutating func normalise() {
        while limbs.last == 0 { limbs.removeLast() }
    }

    static func < (a: Natural, b: Natural) -> Bool {
        if a.limbs.count != b.limbs.count { return a.limbs.count < b.limbs.count }
        for index in a.limbs.indices.reversed() where a.limbs[index] != b.limbs[index] {
            return a.limbs[index] < b.limbs[index]
        }
        return false
    }
}
