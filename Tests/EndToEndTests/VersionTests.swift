import Testing

extension EndToEnd {
    /// `--version` of the three programs.
    @Suite struct Version {
        /// The release written once, in the repository's VERSION file (which debian/changelog
        /// agrees with), then the commit and date `make` stamps ("unknown" before any stamp).
        @Test func everyProgramPrintsTheReleaseOfTheVERSIONFileAndItsCommitAndDate() throws {
            let versionFile = #filePath.replacing("Tests/EndToEndTests/VersionTests.swift", with: "VERSION")
            let release = try #require(readFile(versionFile)).split(separator: "\n").first.map(String.init)
            for program in ["edmmd", "edmmctl", "edmm-sim"] {
                let (status, output) = try runToCompletion(try Products.path(program), ["--version"], stderrPath: "/dev/null")
                #expect(status == 0)
                let line = try #require(output.split(separator: "\n").first.map(String.init))
                #expect(line.hasPrefix("\(program) \(try #require(release)) (commit "), "\(line)")
                #expect(line.contains(", built "), "\(line)")
            }
        }
    }
}
