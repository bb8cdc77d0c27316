import ArgumentParser
import CEDMMShims
import EDMMSystem
import Glibc

/// `edmm-sim hand-over --socket PATH --to-fd N`: connects to edmmd's control socket and passes
/// the connected descriptor over the Unix socket at descriptor N, then exits. edmmd identifies a
/// peer by SO_PEERCRED when it connects, so a test that runs this under `setpriv --reuid ...`
/// gets a connection of another user to drive itself (the isolation tests).
struct HandOverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hand-over", abstract: "Connect to edmmd and pass the connection over a descriptor (tests).",
        discussion: "Exit status 0 when handed over; 1 when the connection failed (the reason on standard error).",
        shouldDisplay: false)

    @Option(help: "edmmd's control socket.")
    var socket: String

    @Option(help: "A connected AF_UNIX socket to pass the connection over.")
    var toFd: Int32

    func run() throws {
        let connection = edmm_seqpacket_connect(socket, 0)
        guard connection >= 0 else {
            printError("edmm-sim hand-over: connect \(socket): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        if case .failure(let failure) = SeqpacketIO.send(toFd, [0x43], descriptors: [connection]) {
            printError("edmm-sim hand-over: passing the connection: \(ErrnoName.described(failure.errno))")
            throw ExitCode(1)
        }
    }
}
