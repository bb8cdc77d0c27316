import ArgumentParser
import EDMMClient

/// Options every edmmctl command takes, before or after the command name.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("The control socket (default: $EDMMD_SOCKET, else \(ControlSocket.defaultPath)).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Print one JSON object instead of text; errors too, on standard error.")
    var json = false

    var socketPath: String { socket ?? ControlSocket.fromEnvironment }
}
