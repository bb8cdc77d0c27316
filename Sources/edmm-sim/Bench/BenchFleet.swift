import Glibc

/// The `bench-host` processes of one benchmark row, stepped together through ready, go, done,
/// check, checked and exit. Used from the bench's one task.
final class BenchFleet {
    private var processes: [ChildProcess] = []
    /// The latest line of each kind from each process.
    private var lines: [[BenchLine.Kind: BenchLine]] = []
    private(set) var failures: [String] = []

    init(count: Int, passing descriptors: [Int32] = [], arguments: (Int) -> [String]) throws {
        let executable = Fleet.ownExecutable()
        for index in 0..<count {
            processes.append(try ChildProcess(executable: executable, arguments: ["bench-host"] + arguments(index), passing: descriptors))
            lines.append([:])
        }
    }

    deinit { kill() }

    /// Waits until every process wrote a line of `kind` (or `timeout` passed, or one failed), and
    /// returns those lines; nil on a failure (see `failures`).
    func await(_ kind: BenchLine.Kind, timeout seconds: Double) -> [BenchLine]? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while failures.isEmpty {
            if lines.allSatisfy({ $0[kind] != nil }) { return lines.compactMap { $0[kind] } }
            guard ContinuousClock.now < deadline else {
                failures.append("\(lines.filter { $0[kind] == nil }.count) clients not \(kind.rawValue) after \(Int(seconds)) s")
                return nil
            }
            pump(timeoutMilliseconds: 100)
        }
        return nil
    }

    private func pump(timeoutMilliseconds: Int32) {
        var fds = processes.map { pollfd(fd: $0.outputClosed ? -1 : $0.output, events: Int16(POLLIN), revents: 0) }
        _ = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        for index in processes.indices where fds[index].revents != 0 {
            for text in processes[index].readLines() {
                guard let line = BenchLine.decode(text) else {
                    failures.append("client \(index) wrote an unreadable line: \(text.prefix(200))")
                    continue
                }
                if line.kind == .error { failures.append(line.message ?? "client \(index) failed") }
                lines[index][line.kind] = line
            }
            if processes[index].outputClosed && lines[index][.checked] == nil {
                failures.append("client \(index) exited early")
            }
        }
    }

    func broadcast(_ command: String) {
        for process in processes where !process.outputClosed { process.send(command) }
    }

    /// Waits up to `timeout` seconds for every process to exit, then kills the rest.
    func reap(timeout seconds: Double) {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var pending = processes
        while !pending.isEmpty && ContinuousClock.now < deadline {
            pending.removeAll { $0.reap(blocking: false) != nil }
            if !pending.isEmpty { usleep(10_000) }
        }
        for process in pending {
            process.terminate()
            process.reap(blocking: true)
        }
    }

    func kill() {
        for process in processes { process.terminate() }
        reap(timeout: 5)
    }
}
