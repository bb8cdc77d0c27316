import Glibc

/// A real terminal for a test: a private tmux server (its own socket name, killed at the end)
/// running one shell in a fixed-size window, driven with send-keys and read with capture-pane.
final class TmuxTerminal {
    private let server: String
    private let scratch: TemporaryDirectory
    private var directory: String { scratch.path }

    init(columns: Int = 140, rows: Int = 40) throws {
        scratch = try TemporaryDirectory()
        server = "edmm-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try tmux([
            "new-session", "-d", "-s", "main", "-x", "\(columns)", "-y", "\(rows)",
            "env -i PATH=/usr/bin:/bin TERM=xterm-256color HOME=/tmp bash --norc --noprofile",
        ])
    }

    /// Ends the tmux server with everything running in it.
    deinit {
        _ = try? tmux(["kill-server"])
        scratch.remove()
    }

    /// Types `text`, then Enter when `enter` is set.
    func type(_ text: String, enter: Bool = true) throws {
        try tmux(["send-keys", "-t", "main", "-l", text])
        if enter { try tmux(["send-keys", "-t", "main", "Enter"]) }
    }

    /// Presses one key by its tmux name (`q`, `C-c`, ...).
    func press(_ key: String) throws { try tmux(["send-keys", "-t", "main", key]) }

    /// The visible screen.
    func screen() throws -> String { try tmux(["capture-pane", "-p", "-t", "main"]) }

    /// Polls the screen until `condition` holds (about 20 s at most); returns the last screen.
    func waitForScreen(_ condition: (String) -> Bool) throws -> String {
        var text = try screen()
        for _ in 0..<200 where !condition(text) {
            usleep(100_000)
            text = try screen()
        }
        return text
    }

    /// Runs one tmux command with its output in a file: no pipe of ours may leak into the tmux
    /// server that `new-session` starts (it would hold the pipe open long after the client exits).
    @discardableResult
    private func tmux(_ arguments: [String]) throws -> String {
        let output = directory + "/tmux.out"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, directory + "/tmux.log", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv = (["/usr/bin/tmux", "-L", server] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // Default dispositions and no blocked signals: the test process ignores some (SIGPIPE,
        // SIGHUP...), and a shell that inherited that would outlive kill-server.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        var none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid = pid_t()
        let rc = posix_spawn(&pid, "/usr/bin/tmux", &actions, &attributes, argv, environ)
        guard rc == 0 else { throw SpawnFailure.system("posix_spawn tmux", rc) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw SpawnFailure.system("tmux \(arguments.first ?? "")", status) }
        return readFile(output) ?? ""
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard fd >= 0, ok else { throw SpawnFailure.system("bind 127.0.0.1:0", errno) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Whether `tool` is installed (scripts/install-deps.sh test installs promtool, tmux and curl).
func requireTool(_ path: String) throws -> String {
    guard access(path, X_OK) == 0 else {
        throw SpawnFailure.system("\(path) is missing: run scripts/install-deps.sh test; stat", ENOENT)
    }
    return path
}
