import EDMMCore
import Glibc

/// The client processes of one `edmm-sim soak` and what each said last. Used from the command's
/// one task; nothing here is shared.
final class SoakFleet {
    struct Member {
        let label: String
        let process: ChildProcess
        let started: ContinuousClock.Instant
        var enclave: UInt64?
        var ready = false
        var paused = false
        var stopped = false
        var lastCheck: ContinuousClock.Instant?
        var lastProgress: SoakLine?
    }

    private(set) var members: [Member] = []
    private let socket: String
    private let workingSet: UInt64
    private let churn: Double
    private let paceMs: Int
    private let seed: UInt64
    private let executable = Fleet.ownExecutable()
    /// Clients started so far (the next one's number).
    private(set) var spawned = 0
    /// Self-checks passed, enclaves given up and registered anew, by all clients so far.
    private(set) var checksPassed = 0
    private(set) var restarts = 0
    /// The first thing that must not happen, said by a client or seen here.
    private(set) var failures: [String] = []

    init(socket: String, seed: UInt64, workingSet: UInt64, churn: Double, paceMs: Int) {
        self.socket = socket
        self.seed = seed
        self.workingSet = workingSet
        self.churn = churn
        self.paceMs = paceMs
    }

    func spawn() throws {
        let label = "soak-\(spawned)"
        let process = try ChildProcess(
            executable: executable,
            arguments: [
                "soak-host", "--socket", socket, "--seed", "\(seed &+ UInt64(spawned))", "--label", label,
                "--working-set", "\(workingSet)", "--churn", "\(churn)", "--pace-ms", "\(paceMs)",
            ])
        spawned += 1
        members.append(Member(label: label, process: process, started: .now))
    }

    /// Reads whatever the clients wrote, waiting up to `timeoutMilliseconds` for something.
    func pump(timeoutMilliseconds: Int32) {
        var fds = members.map { pollfd(fd: $0.process.outputClosed ? -1 : $0.process.output, events: Int16(POLLIN), revents: 0) }
        _ = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        for index in members.indices where fds[index].revents != 0 {
            for text in members[index].process.readLines() { take(text, from: index) }
            if members[index].process.outputClosed && !members[index].stopped {
                fail("\(members[index].label) exited unexpectedly\(exitDescription(members[index].process))")
            }
        }
    }

    private func take(_ text: String, from index: Int) {
        guard let line = SoakLine.decode(text) else { return fail("\(members[index].label) wrote an unreadable line: \(text.prefix(200))") }
        if let enclave = line.enclave { members[index].enclave = enclave }
        switch line.kind {
        case .ready:
            members[index].ready = true
            members[index].lastCheck = .now
        case .progress: members[index].lastProgress = line
        case .check:
            members[index].lastCheck = .now
            if line.problems?.isEmpty ?? true { checksPassed += 1 }
        case .paused: members[index].paused = true
        case .restarted: restarts += 1
        case .stopped:
            members[index].stopped = true
            for problem in line.problems ?? [] { fail(problem) }
        case .failed:
            for problem in line.problems ?? ["\(members[index].label) failed"] { fail(problem) }
        }
    }

    func fail(_ message: String) {
        if !failures.contains(message) { failures.append(message) }
    }

    /// Pumps until `done` holds for every client; false (with a failure naming the laggards) after `seconds`.
    func await(_ what: String, timeout seconds: Double, _ done: (Member) -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if members.allSatisfy(done) { return true }
            if !failures.isEmpty { return false }
            pump(timeoutMilliseconds: 50)
        }
        for member in members where !done(member) {
            fail("\(member.label) was not \(what) after \(Int(seconds)) s; \(describe(member))")
        }
        return false
    }

    /// Clients whose last self-check is older than `limit` (stuck waiting for something).
    func stuck(longerThan limit: Duration) -> [String] {
        let now = ContinuousClock.now
        return members.compactMap { member in
            guard let last = member.lastCheck, now - last > limit else { return nil }
            return "\(member.label) made no self-check for \(Int((now - last).components.seconds)) s; \(describe(member))"
        }
    }

    func describe(_ member: Member) -> String {
        guard let progress = member.lastProgress else { return "it never reported progress" }
        let waits = (progress.waitingFor ?? [:]).sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return
            """
            last seen \(progress.phase ?? "?") on enclave \(progress.enclave.map(String.init) ?? "?"), waiting for \
            \(waits.isEmpty ? "no reply" : waits)
            """
    }

    func broadcast(_ command: SoakCommandWord) {
        for member in members where !member.process.outputClosed { member.process.send(command.rawValue) }
        if command == .resume { for index in members.indices { members[index].paused = false } }
    }

    /// SIGKILLs a client picked with `random` and starts another in its place; false if none
    /// was ready to be killed.
    func killOne(_ random: inout SplitMix64) throws -> Bool {
        let candidates = members.indices.filter { members[$0].ready }
        guard let index = candidates.randomElement(using: &random) else { return false }
        let victim = members.remove(at: index)
        victim.process.terminate(SIGKILL)
        victim.process.reap(blocking: true)
        try spawn()
        return true
    }

    /// Waits for every client to exit, killing those still running after `seconds`.
    func reap(timeout seconds: Double) {
        ChildProcess.reapAll(members.map(\.process), timeout: seconds)
    }

    private func exitDescription(_ process: ChildProcess) -> String {
        guard let status = process.reap(blocking: false) else { return "" }
        let signal = status & 0x7F
        return signal != 0 ? " (killed by signal \(signal))" : " (exit status \((status >> 8) & 0xFF))"
    }
}
