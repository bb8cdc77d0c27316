import ArgumentParser
import Glibc

/// Options every edmmctl command takes, before or after the command name.
struct GlobalOptions: ParsableArguments {
    static let defaultSocket = "/run/edmmd/control.sock"

    @Option(name: .long, help: ArgumentHelp("The control socket (default: $EDMMD_SOCKET, else \(GlobalOptions.defaultSocket)).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    var socketPath: String {
        if let socket { return socket }
        if let fromEnvironment = getenv("EDMMD_SOCKET"), fromEnvironment.pointee != 0 { return String(cString: fromEnvironment) }
        return Self.defaultSocket
    }
}
