/// The conformance suite: the kernel selftests (under their kernel names), the derived cases
/// D1...D23, the injected faults F1...F4, the SDM and kernel cases C1...C5, P1, P2, E1 and E2,
/// and K1...K6 (what the unmodified selftests need from it through c/kselftest), run the same
/// way by `edmm-sim conformance` and by the Swift tests.
public enum ConformanceSuite {
    public static let cases: [ConformanceCase] =
        SelftestCases.all + DerivedCases.all + FaultInjectionCases.all + FidelityCases.all
        + HarnessCases.all

    public static func named(_ name: String) -> ConformanceCase? { cases.first { $0.name == name } }

    /// Runs the case called `name` (a result with `aborted` set if there is none).
    public static func run(_ name: String) -> ConformanceResult {
        named(name)?.run() ?? ConformanceResult(name: name, expectations: [], aborted: "no such case")
    }
}
