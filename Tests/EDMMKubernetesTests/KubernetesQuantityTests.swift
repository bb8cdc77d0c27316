import EDMMKubernetes
import Testing

struct KubernetesQuantityTests {
    @Test(arguments: [
        ("64Mi", UInt64(67_108_864)), ("1Gi", 1 << 30), ("1Ki", 1024), ("2Ti", 2 << 40), ("1Pi", 1 << 50), ("1Ei", 1 << 60),
        ("500M", 500_000_000), ("1k", 1000), ("1G", 1_000_000_000), ("3T", 3_000_000_000_000), ("1P", 1_000_000_000_000_000),
        ("2E", 2_000_000_000_000_000_000), ("98566144", 98_566_144), ("0", 0), ("+64Mi", 67_108_864), ("-0", 0), ("0Mi", 0),
        ("0.5Gi", 536_870_912), ("1.5Mi", 1_572_864), (".5Ki", 512), ("5.", 5), ("1e9", 1_000_000_000), ("1E3", 1000),
        ("1e+3", 1000), ("25e-1", 3), ("1.25e2", 125), ("500m", 1), ("1000m", 1), ("1001m", 2), ("1500000u", 2), ("1n", 1),
        ("0.000001Ki", 1), ("9223372036854775807", UInt64(Int64.max)),
    ])
    func quantitiesAreExactBytesRoundedUp(_ text: String, _ expected: UInt64) throws {
        #expect(try KubernetesQuantity.bytes(text) == expected)
    }

    @Test(arguments: [
        ("", "no digits"), ("Mi", "no digits"), (".", "no digits"), ("-1Mi", "negative"), ("1.2.3", "more than one decimal point"),
        ("64MiB", "unknown suffix \"MiB\" (Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>)"),
        ("64 Mi", "unknown suffix \" Mi\" (Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>)"),
        ("1e", "unknown suffix \"e\" (Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>)"),
        ("1e1000", "exponent 1000 out of range"), ("9223372036854775808", "larger than 9223372036854775807 bytes"),
        ("8Ei", "larger than 9223372036854775807 bytes"),  // 2^63: one past the API's int64 ceiling
        ("16Ei", "larger than 9223372036854775807 bytes"), ("1e19", "larger than 9223372036854775807 bytes"),
        ("١٢", "no digits"),
    ])
    func malformedOrOutOfRangeQuantitiesAreRefusedWithTheReason(_ text: String, _ reason: String) {
        #expect(throws: KubernetesQuantity.ParseError(text: text, reason: reason)) { try KubernetesQuantity.bytes(text) }
    }

    @Test func overlongTextIsRefusedBeforeAnyArithmetic() {
        let text = "1" + String(repeating: "0", count: 70)
        #expect(throws: KubernetesQuantity.ParseError(text: String(text.prefix(80)), reason: "longer than 64 characters")) {
            try KubernetesQuantity.bytes(text)
        }
    }

    @Test func manyFractionDigitsStayExact() throws {
        // 0.1 of a binary gibibyte has no exact decimal-float form; the ceiling is 107374183 (…182.4 rounded up).
        #expect(try KubernetesQuantity.bytes("0.1Gi") == 107_374_183)
        #expect(try KubernetesQuantity.bytes("0.30000000000000000000000000001Gi") == 322_122_548)
    }
}
