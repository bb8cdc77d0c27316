import CEDMMShims
import EDMMSystem
import Glibc

/// A connection to `socketPath` made by a child process that dropped to uid/gid 65534 (nobody,
/// nogroup) before connecting, so SO_PEERCRED shows the daemon another user. The child hands the
/// connected socket back over a socketpair and exits. Tests run as root; python3 is a test
/// dependency (scripts/install-deps.sh test).
func connectAsNobody(_ socketPath: String) throws -> TestClient {
    let script = """
        import os, socket, sys
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(sys.argv[1])
        socket.send_fds(socket.socket(fileno=3), [b"c"], [s.fileno()])
        """
    var pair: [Int32] = [0, 0]
    guard edmm_seqpacket_pair(&pair, 0) == 0 else { throw TestClient.Failure.system("socketpair", errno) }
    defer { close(pair[0]) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pair[1], 3)
    let args = ["python3", "-c", script, socketPath]
    var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var child = pid_t()
    let rc = posix_spawnp(&child, "python3", &actions, nil, &argv, environ)
    close(pair[1])
    guard rc == 0 else { throw TestClient.Failure.system("posix_spawnp python3", rc) }
    var status: Int32 = 0
    defer { waitpid(child, &status, 0) }
    var byte: UInt8 = 0
    let received = withUnsafeMutableBytes(of: &byte) { SeqpacketIO.receive(pair[0], into: $0, maxDescriptors: 1) }
    guard case .success(let message) = received, message.length == 1, let fd = message.descriptors.first else {
        throw TestClient.Failure.unexpected("the unprivileged child did not hand over a connection")
    }
    return TestClient(connected: fd)
}
