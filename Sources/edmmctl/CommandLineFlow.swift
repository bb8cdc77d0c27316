import ArgumentParser
import EDMMSystem
import Glibc

extension EdmmCtl {
    /// ArgumentParser's flow, plus what it does not do: a suggestion for a mistyped command, and
    /// errors as JSON on standard error when --json is given.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let json = arguments.contains("--json")
        do {
            var command: any ParsableCommand
            do {
                command = try parseAsRoot(arguments)
            } catch {
                // Only a command line ArgumentParser refuses gets the friendlier word (--help and
                // --generate-completion-script end in a clean exit with their output).
                if exitCode(for: error) != .success,
                    let unknown = CommandLineError.unknownCommand(in: arguments, commands: Self.commandNames)
                {
                    throw unknown
                }
                throw error
            }
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch let error as CommandLineError {
            if json {
                DaemonSession.printJSONError(message: "\(error)", exitStatus: 64)
            } else {
                printError("edmmctl: \(error)\nSee 'edmmctl --help'.")
            }
            Glibc.exit(64)
        } catch {
            guard json, !(error is ExitCode) else { exit(withError: error) }
            let status = exitCode(for: error)
            guard status != .success else { exit(withError: error) }  // --help, which has no JSON form
            DaemonSession.printJSONError(message: message(for: error), exitStatus: status.rawValue)
            Glibc.exit(status.rawValue)
        }
    }

    static var commandNames: [String] { configuration.subcommands.map { $0._commandName } + ["help"] }
}

/// A command line ArgumentParser would refuse less helpfully.
enum CommandLineError: Error, CustomStringConvertible {
    case unknown(String, suggestion: String?, commands: [String])
    case noCommand

    /// The first word that is not an option (or an option's value), when it names no command.
    static func unknownCommand(in arguments: [String], commands: [String]) -> CommandLineError? {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { return nil }
            if argument == "--socket" || argument == "--generate-completion-script" {
                index += 2
                continue
            }
            if argument.hasPrefix("-") {
                index += 1
                continue
            }
            guard !commands.contains(argument) else { return nil }
            let nearest = commands.map { (name: $0, distance: editDistance(argument, $0)) }.min { $0.distance < $1.distance }
            let suggestion = nearest.flatMap { $0.distance <= max(1, argument.count / 3) ? $0.name : nil }
            return .unknown(argument, suggestion: suggestion, commands: commands.filter { $0 != "help" })
        }
        return nil
    }

    var description: String {
        switch self {
        case .unknown(let word, let suggestion?, _): "unknown command '\(word)'; did you mean '\(suggestion)'?"
        case .unknown(let word, nil, let commands): "unknown command '\(word)'; the commands are \(commands.joined(separator: ", "))"
        case .noCommand: "no command given; see edmmctl --help"
        }
    }

    /// Levenshtein distance: insertions, deletions and substitutions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}
