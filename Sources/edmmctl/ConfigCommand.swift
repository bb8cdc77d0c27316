import ArgumentParser
import EDMMConfig
import EDMMSystem

/// `edmmctl config check FILE`.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with edmmd configuration files.",
        subcommands: [ConfigCheckCommand.self])
}

/// Validates a configuration file locally, with the parser edmmd uses; no daemon needed.
struct ConfigCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate an edmmd configuration file; print every problem as FILE:LINE: message.",
        discussion: """
            Uses edmmd's own strict parser: unknown sections and keys, wrong types and values out \
            of range are errors. Exit status 0 when the file is valid, 1 when it has problems \
            (all of them are printed on standard error).

            --json prints {"file", "valid", "problems": [{"file", "line", "message"}]}.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The configuration file (e.g. /etc/edmmd/edmmd.toml).", valueName: "file"))
    var file: String

    struct Problem: Encodable {
        var file: String
        var line: Int?
        var message: String
    }

    struct Result: Encodable {
        var file: String
        var valid: Bool
        var problems: [Problem]
    }

    func run() async throws {
        var problems: [ConfigError] = []
        do throws(ConfigErrors) {
            _ = try DaemonConfig.load(path: file)
        } catch {
            problems = error.errors
        }
        if global.json {
            let listed = problems.map { Problem(file: $0.file, line: $0.line, message: $0.message) }
            print(jsonText(Result(file: file, valid: problems.isEmpty, problems: listed)))
        } else if problems.isEmpty {
            print("\(file): OK")
        } else {
            for problem in problems { printError(problem.description) }
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }
}
