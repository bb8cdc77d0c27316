import Glibc

/// The host processes of one `edmm-sim run`, and what each has said so far. Used from the
/// command's one task; nothing here is shared.
final class Fleet {
    struct Member {
        let label: String
        let process: ChildProcess
        var reached: Set<HostLine.Kind> = []
        var progress: HostProgress?
        var report: HostReport?
    }

    private(set) var members: [Member] = []
    /// Hosts that failed or left early, one line each.
    private(set) var failures: [String] = []

    /// `reconnectFor`: how long each host tries to get back to edmmd after losing it (0: never).
    init(
        launching plan: [(label: String, workload: WorkloadKind, seed: UInt64)], socket: String, workingSet: UInt64,
        reconnectFor: Double = 0
    ) throws {
        let executable = Self.ownExecutable()
        let reconnect = reconnectFor > 0 ? ["--reconnect-for", "\(Int(reconnectFor.rounded(.up)))"] : []
        for host in plan {
            let process = try ChildProcess(
                executable: executable,
                arguments: [
                    "run-host", "--socket", socket, "--workload", host.workload.rawValue, "--seed", "\(host.seed)",
                    "--label", host.label, "--working-set", "\(workingSet)",
                ] + reconnect)
            members.append(Member(label: host.label, process: process))
        }
    }

    var reports: [HostReport] { members.compactMap(\.report) }

    /// The latest progress of every host, added up.
    var progressTotals: HostProgress {
        members.compactMap(\.progress).reduce(HostProgress(requests: 0, ioctlRequests: 0, sim: SimTotals())) {
            HostProgress(requests: $0.requests + $1.requests, ioctlRequests: $0.ioctlRequests + $1.ioctlRequests, sim: $0.sim + $1.sim)
        }
    }

    /// Reads whatever the hosts wrote, waiting up to `timeoutMilliseconds` for something.
    func pump(timeoutMilliseconds: Int32) {
        var fds = members.map { pollfd(fd: $0.process.outputClosed ? -1 : $0.process.output, events: Int16(POLLIN), revents: 0) }
        _ = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        for index in members.indices where fds[index].revents != 0 {
            for text in members[index].process.readLines() { take(text, from: index) }
            if members[index].process.outputClosed && !members[index].reached.contains(.report) {
                fail(index, "exited before reporting\(exitDescription(members[index].process))")
            }
        }
    }

    private func take(_ text: String, from index: Int) {
        guard let line = HostLine.decode(text) else { return fail(index, "wrote an unreadable line: \(text.prefix(200))") }
        members[index].reached.insert(line.kind)
        switch line.kind {
        case .progress: members[index].progress = line.progress
        case .report: members[index].report = line.report
        case .error: fail(index, line.message ?? "failed")
        case .ready, .stopped: break
        }
    }

    private func fail(_ index: Int, _ message: String) {
        let line = "\(members[index].label): \(message)"
        if !failures.contains(line) { failures.append(line) }
    }

    /// Pumps until every live host has written a line of `kind`; false on a failure or timeout.
    func await(_ kind: HostLine.Kind, timeout seconds: Double) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if members.allSatisfy({ $0.reached.contains(kind) }) { return true }
            if members.allSatisfy({ $0.reached.contains(kind) || $0.process.outputClosed }) { return false }
            pump(timeoutMilliseconds: 100)
        }
        for member in members where !member.reached.contains(kind) {
            failures.append(
                """
                \(member.label): not \(kind.rawValue) after \(Int(seconds)) s; \
                \(member.progress?.stuckDescription ?? "never reported progress")
                """
            )
        }
        return false
    }

    func broadcast(_ command: String) {
        for member in members where !member.process.outputClosed { member.process.send(command) }
    }

    /// Waits for every host to exit, killing those still running after `timeout` seconds.
    func reap(timeout seconds: Double) {
        ChildProcess.reapAll(members.map(\.process), timeout: seconds)
    }

    func kill() {
        for member in members { member.process.terminate() }
        reap(timeout: 5)
    }

    private func exitDescription(_ process: ChildProcess) -> String {
        guard let status = process.reap(blocking: false) else { return "" }
        let signal = status & 0x7F
        return signal != 0 ? " (killed by signal \(signal))" : " (exit status \((status >> 8) & 0xFF))"
    }

    /// This executable's path, for starting hosts.
    static func ownExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/proc/self/exe" }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
