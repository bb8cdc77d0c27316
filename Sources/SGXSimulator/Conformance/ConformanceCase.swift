/// One checked value of a conformance case: what the reference expects and what the simulator
/// produced.
public struct Expectation: Sendable, Equatable, CustomStringConvertible {
    public var label: String
    public var expected: String
    public var actual: String
    public var passed: Bool { expected == actual }

    public var description: String { passed ? "\(label) = \(actual)" : "\(label): expected \(expected), got \(actual)" }
}

/// The outcome of one case.
public struct ConformanceResult: Sendable {
    public var name: String
    public var expectations: [Expectation]
    /// Set when the case could not run to the end (setup failed, or a required step failed).
    public var aborted: String?

    public var passed: Bool { aborted == nil && !expectations.isEmpty && expectations.allSatisfy(\.passed) }

    /// "ok (N checks)" or the failed checks.
    public var detail: String {
        let failed = expectations.filter { !$0.passed }.map(\.description)
        let problems = failed + (aborted.map { ["aborted: \($0)"] } ?? [])
        return problems.isEmpty ? "ok (\(expectations.count) checks)" : problems.joined(separator: "; ")
    }
}

/// A named case: the kernel selftest it reproduces, or a derived case D1...D23.
public struct ConformanceCase: Sendable {
    public var name: String
    public var summary: String
    let body: @Sendable (Checks) throws -> Void

    public func run() -> ConformanceResult {
        let checks = Checks()
        var aborted: String?
        do {
            try body(checks)
        } catch let stop as Checks.Stop {
            aborted = stop.reason
        } catch {
            aborted = "\(error)"
        }
        return ConformanceResult(name: name, expectations: checks.expectations, aborted: aborted)
    }
}

/// Collects expectations. `expect` records and goes on (the selftests' EXPECT); `require`
/// records and stops the case on a mismatch (their ASSERT).
public final class Checks: @unchecked Sendable {
    struct Stop: Error { var reason: String }

    // Used by one case on one thread at a time.
    private(set) var expectations: [Expectation] = []

    func expect<T: Equatable>(_ label: String, _ actual: T, _ expected: T) {
        expectations.append(Expectation(label: label, expected: "\(expected)", actual: "\(actual)"))
    }

    func require<T: Equatable>(_ label: String, _ actual: T, _ expected: T) throws {
        expect(label, actual, expected)
        if actual != expected { throw Stop(reason: "\(label) is \(actual), expected \(expected)") }
    }

    func fail(_ reason: String) throws -> Never { throw Stop(reason: reason) }
}
