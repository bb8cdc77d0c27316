import ArgumentParser
import EDMMSystem
import SGXSimulator

/// `edmm-sim conformance [--json] [CASE...]`: the kernel selftests and derived cases on the
/// simulator. Exit status 1 if any case failed.
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance", abstract: "Run the kernel SGX selftests and derived cases D1-D23 on the simulator.")

    @Flag(help: "Print one JSON object instead of one line per case.")
    var json = false

    @Flag(help: "List the case names and exit.")
    var list = false

    @Argument(help: "Run only these cases (default: all).")
    var cases: [String] = []

    func run() throws {
        if list {
            for c in ConformanceSuite.cases { print("\(c.name)  \(c.summary)") }
            return
        }
        let names = cases.isEmpty ? ConformanceSuite.cases.map(\.name) : cases
        var results: [ConformanceResult] = []
        for name in names {
            let result = ConformanceSuite.run(name)
            results.append(result)
            if !json { print("\(result.passed ? "PASS" : "FAIL")  \(result.name)  \(result.detail)") }
        }
        let passed = results.filter(\.passed).count
        let failed = results.count - passed
        if json {
            let items = results.map {
                "{\"name\":\(JSONText.quote($0.name)),\"passed\":\($0.passed),\"detail\":\(JSONText.quote($0.detail))}"
            }
            print("{\"cases\":[\(items.joined(separator: ","))],\"passed\":\(passed),\"failed\":\(failed)}")
        } else {
            print("\(passed) passed, \(failed) failed")
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
