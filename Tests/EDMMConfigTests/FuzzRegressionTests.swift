import Testing

@testable import EDMMConfig

#if canImport(Glibc)
    import Glibc
#endif

/// Every input ConfigFuzz ever crashed on (FuzzTesting/Regressions/config/) must now be a
/// configuration error, not a crash.
@Suite struct ConfigFuzzRegressionTests {
    static let directory = #filePath.replacingOccurrences(
        of: "Tests/EDMMConfigTests/FuzzRegressionTests.swift", with: "FuzzTesting/Regressions/config")

    static var inputs: [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    @Test func theRegressionFolderHasInputs() {
        #expect(Self.inputs.count >= 4)
    }

    @Test(arguments: inputs)
    func aPastCrashIsNowASyntaxError(_ name: String) throws {
        let bytes = try readAll("\(Self.directory)/\(name)")
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(throws: ConfigErrors.self) { try DaemonConfig.parse(toml: text, fileName: name) }
    }
}
