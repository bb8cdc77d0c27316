/// Stops the fuzzer with a reproducer when an oracle does not hold. `fatalError` (not a thrown
/// error) so that libFuzzer records the input as a crash.
func violation(_ what: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError("oracle violated: \(what)", file: file, line: line)
}

func require(_ condition: Bool, _ what: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { violation(what(), file: file, line: line) }
}
