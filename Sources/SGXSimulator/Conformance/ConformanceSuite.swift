/// The conformance suite: the kernel selftests (under their kernel names) and the derived
/// cases D1...D23, run the same way by `edmm-sim conformance` and by the Swift tests.
public enum ConformanceSuite {
    public static let cases: [ConformanceCase] = SelftestCases.all + DerivedCases.all

    public static func named(_ name: String) -> ConformanceCase? { cases.first { $0.name == name } }

    /// Runs the case called `name` (a result with `aborted` set if there is none).
    public static func run(_ name: String) -> ConformanceResult {
        named(name)?.run() ?? ConformanceResult(name: name, expectations: [], aborted: "no such case")
    }
}
