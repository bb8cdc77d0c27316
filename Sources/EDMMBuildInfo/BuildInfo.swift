import EDMMVersion

/// What `--version` says of a program: the release (`EDMMVersion`), the commit and the date.
/// `BuildInfoPlugin` generates the commit and date at build time from the stamp `make` writes
/// (`scripts/build-info.sh`); without one (a plain `swift build` in a fresh clone) they are
/// unknown. The generated constants are internal, behind these accessors: a new stamp recompiles
/// this module and the programs, and relinks them.
public enum BuildInfo {
    public static var version: String { EDMMVersion.release }
    public static var commit: String? { stampedCommit }
    public static var date: String? { stampedDate }

    /// `edmmd 0.1.0 (commit 96e6981c0ffe, built 2025-12-04T22:19:00Z)`
    public static func versionLine(of program: String) -> String {
        "\(program) \(version) (commit \(commit ?? "unknown"), built \(date ?? "unknown"))"
    }
}
