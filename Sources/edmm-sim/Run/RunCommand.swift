import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import SGXSimulator
import Synchronization

/// Set by SIGINT/SIGTERM in `edmm-sim run`: the run stops its hosts and reports.
let runInterrupted = Atomic<Bool>(false)

/// `edmm-sim run`: a fleet of simulated enclave-host processes replaying workloads against a
/// live edmmd, then a summary of what it cost and whether edmmd's ledger matches the EPCM.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run simulated enclave hosts against a live edmmd and report.",
        discussion: """
            Starts --enclaves host processes. Each connects to edmmd on its own, builds a \
            simulated enclave in edmmd's simulated EPC (edmmd must run with --simulate, or \
            without SGX2), registers it and replays a seeded workload:

              server      steady churn of request buffers through the lazy-free pool, with
                          occasional RESTRICT/RELAX and worker threads (MAKE_TCS)
              startup     fast growth in large chunks to the working set, a few frees,
                          then a restart that trims everything
              gc          growth in 32-page regions, then collections that free and trim
                          whole regions at once
              fragmented  arenas cut into 1-2 page objects; runs of neighbours are freed
                          or trimmed, leaving holes that later small allocations fill
              mixed       the four above in turn, one per enclave

            When the duration ends (or on Ctrl-C), every host stops, syncs, and compares its \
            enclave's EPCM with its own record and with edmmd's ledger (STATS). ioctls, pages \
            and exits are the simulator's own counts, not edmmd's.

            If edmmd stops during the run (SHUTDOWN_NOTICE, or the connection lost), the run \
            ends within a second, says so, and exits 75, unless --wait-for-restart gives edmmd \
            time to come back: the hosts then reconnect, ATTACH their enclaves again (or \
            register them again, adopting their pages, when edmmd lost them) and carry on.

            EXIT STATUS
              0   the run completed and every ledger matched the EPCM
              1   a host failed, refused an unsafe reply, or a ledger did not match
              64  bad command line
              69  edmmd is not reachable, or not on a simulated EPC
              75  edmmd stopped during the run (and did not come back within
                  --wait-for-restart)
            """)

    @Option(help: ArgumentHelp("edmmd's control socket ($EDMMD_SOCKET, when set, is the default).", valueName: "path"))
    var socket: String = ControlSocket.fromEnvironment

    @Option(help: "Number of enclave-host processes.")
    var enclaves: Int = 8

    @Option(help: "server, startup, gc, fragmented or mixed.")
    var workload: String = "mixed"

    @Option(help: "Seed of the workloads (host i uses seed + i).")
    var seed: UInt64 = 1

    @Option(help: "Seconds to run; 0 runs until interrupted.")
    var duration: Double = 10

    @Option(help: "Working set of each enclave, in pages.")
    var workingSet: UInt64 = 1024

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    @Flag(help: "Print a refreshing summary line every second.")
    var live = false

    @Option(
        help: ArgumentHelp(
            "When edmmd stops, wait up to this many seconds for it to come back and carry on; 0 ends the run (exit 75).",
            valueName: "seconds"))
    var waitForRestart: Double = 0

    func validate() throws {
        guard (1...1024).contains(enclaves) else { throw ValidationError("--enclaves must be 1...1024") }
        guard workload == "mixed" || WorkloadKind(rawValue: workload) != nil else {
            throw ValidationError("--workload must be server, startup, gc, fragmented or mixed")
        }
        guard duration >= 0, duration.isFinite else { throw ValidationError("--duration must be 0 or more seconds") }
        guard waitForRestart >= 0, waitForRestart <= 3600 else { throw ValidationError("--wait-for-restart must be 0...3600 seconds") }
        guard workingSet >= 16, workingSet <= 1 << 20 else { throw ValidationError("--working-set must be 16...1048576 pages") }
    }

    func run() async throws {
        let observer: RunObserver
        do {
            observer = try await RunObserver(socket: socket)
        } catch {
            printError("edmm-sim run: \(error)")
            throw ExitCode(69)
        }
        signal(SIGPIPE, SIG_IGN)
        // The first Ctrl-C stops the hosts and reports; a second one ends the run at once.
        for s in [SIGINT, SIGTERM] {
            signal(s) { number in
                runInterrupted.store(true, ordering: .relaxed)
                signal(number, SIG_DFL)
            }
        }
        let fleet: Fleet
        do {
            fleet = try Fleet(launching: plan(), socket: socket, workingSet: workingSet, reconnectFor: waitForRestart)
        } catch {
            printError("edmm-sim run: \(error)")
            throw ExitCode(1)
        }
        guard fleet.await(.ready, timeout: 60) else {
            printError("edmm-sim run: hosts did not start: \(fleet.failures.joined(separator: "; "))")
            fleet.kill()
            throw ExitCode(1)
        }
        let start = ContinuousClock.now
        let ticker = LiveTicker(enabled: live, toStandardError: json)
        let daemonStopped = await watch(fleet, observer, ticker, since: start)
        let elapsed = ContinuousClock.now - start
        ticker.finish()
        if let daemonStopped {
            // Nothing left to check against: the hosts are told to go, and stragglers are killed.
            fleet.broadcast("stop")
            fleet.broadcast("exit")
            fleet.reap(timeout: 3)
            printError(
                """
                edmm-sim run: edmmd stopped after \(fixed(elapsed.inSeconds, 1)) s (\(daemonStopped)); the hosts had made \
                \(grouped(fleet.progressTotals.requests)) requests. The run ends without its checks; --wait-for-restart SECONDS waits for \
                edmmd to come back
                """
            )
            throw ExitCode(75)
        }
        fleet.broadcast("stop")
        let stopped = fleet.await(.stopped, timeout: 120)
        if stopped { fleet.broadcast("check") }
        let reported = stopped && fleet.await(.report, timeout: 120)
        let after = try? await observer.connection.status()
        fleet.broadcast("exit")
        fleet.reap(timeout: 30)
        let summary = RunSummary(
            plan: plan(), seed: seed, elapsed: elapsed, reports: fleet.reports, failures: fleet.failures,
            before: observer.initial, after: after, machine: observer.machine)
        print(json ? summary.json : summary.text)
        if !reported || !summary.passed { throw ExitCode(1) }
    }

    /// Runs the fleet until the duration is over, a host fails or the run is interrupted; shows the
    /// live line. Returns why edmmd stopped, when it went away and did not come back in time.
    private func watch(_ fleet: Fleet, _ observer: RunObserver, _ ticker: LiveTicker, since start: ContinuousClock.Instant) async
        -> String?
    {
        var outage: (reason: String, since: ContinuousClock.Instant)?
        while !runInterrupted.load(ordering: .relaxed) && fleet.failures.isEmpty {
            let elapsed = ContinuousClock.now - start
            if duration > 0 && elapsed >= .seconds(duration) { break }
            fleet.pump(timeoutMilliseconds: 200)
            if let reason = outage?.reason ?? observer.daemonGone {
                let since = outage?.since ?? .now
                if waitForRestart == 0 { return reason }
                if await observer.reconnect(socket: socket) {
                    printError("edmm-sim run: edmmd went away (\(reason)) and is back after \(fixed((.now - since).inSeconds, 1)) s")
                    outage = nil
                } else if ContinuousClock.now - since > .seconds(waitForRestart) {
                    return "\(reason); not back within \(fixed(waitForRestart, 0)) s"
                } else {
                    outage = (reason, since)
                }
                continue
            }
            if ticker.due() { ticker.show(await observer.snapshot(fleet.progressTotals, elapsed: ContinuousClock.now - start)) }
        }
        return nil
    }

    /// The workload of each host.
    func plan() -> [(label: String, workload: WorkloadKind, seed: UInt64)] {
        (0..<enclaves).map { i in
            let kind = WorkloadKind(rawValue: workload) ?? WorkloadKind.allCases[i % WorkloadKind.allCases.count]
            return ("\(kind.rawValue)-\(i)", kind, seed &+ UInt64(i))
        }
    }
}
