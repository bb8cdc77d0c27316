import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMSystem
import FoundationEssentials
import Glibc
import SGXSimulator

/// `edmm-sim soak`: many client processes doing random work against a live edmmd for a long
/// time, with invariant checks every second, failing loudly on the first violation.
struct SoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Run many random clients against a live edmmd and check its invariants every second.",
        discussion: """
            Starts --clients client processes. Each registers a simulated enclave in edmmd's \
            simulated EPC (edmmd must run with --simulate, or without SGX2) and does random work \
            on it: one of the workloads of `edmm-sim run`, or every verb at random on whole \
            blocks and parts of them. Now and then a client gives its enclave up (UNREGISTER, or \
            just closing its connection) and registers a new one; every --kill-every seconds the \
            soak SIGKILLs a random client and starts another.

            Every second each client checks itself at rest (its EPCM against its own record and \
            edmmd's ledger, STATS), and the soak checks the simulated EPC's own invariants and \
            edmmd's process: descriptors within one per connection and enclave (plus its own), \
            resident memory under --max-rss. Every --pause-every seconds every client pauses at \
            rest and the soak checks exactly: descriptors, the EPC accounting against the sum \
            of the ledgers, each ledger against its EPCM. At the end every client unregisters and \
            edmmd must hold nothing: no enclave, no committed page, no extra descriptor.

            A client that makes no self-check for --stuck-after seconds is a failure, named with \
            the replies it waits for.

            With fault injection on in edmmd's simulated EPC ([simulator] fault_* in its \
            configuration), the clients meet the transient failures of SGX2 hardware and the \
            Linux driver throughout; the soak prints how many of each were injected, and with \
            --require-faults fails if a kind that has a rate was never injected.

            EXIT STATUS
              0   no violation
              1   a violation (printed on standard error as it happened)
              1   --require-faults: a kind with a rate was never injected
              64  bad command line
              69  edmmd is not reachable, or not on a simulated EPC
            """)

    @Option(help: ArgumentHelp("edmmd's control socket ($EDMMD_SOCKET, when set, is the default).", valueName: "path"))
    var socket: String = ControlSocket.fromEnvironment

    @Option(help: "Client processes working at any time.")
    var clients: Int = 64

    @Option(help: "Seconds to run.")
    var duration: Double = 120

    @Option(help: "Seed of the clients (client i uses seed + i) and of the kills.")
    var seed: UInt64 = 1

    @Option(help: "Working set of each client, in pages.")
    var workingSet: UInt64 = 256

    @Option(help: "Chance, per batch, that a client gives its enclave up and registers a new one.")
    var churn: Double = 0.002

    @Option(help: "Pause of each client between batches, in milliseconds.")
    var paceMs: Int = 5

    @Option(help: "Seconds between SIGKILLs of a random client (0: none).")
    var killEvery: Double = 5

    @Option(help: "Seconds between exact checks with every client paused (0: only at the end).")
    var pauseEvery: Double = 10

    @Option(help: "Seconds without a self-check after which a client counts as stuck.")
    var stuckAfter: Double = 60

    @Option(help: "Largest resident memory edmmd may reach, in MiB.")
    var maxRss: UInt64 = 1024

    @Flag(help: "Fail unless edmmd's simulated EPC injects faults and every kind with a rate was injected at least once.")
    var requireFaults = false

    @Option(
        help: ArgumentHelp(
            """
            Write edmmd's resident memory, descriptors, connections, enclaves, committed pages and requests, one CSV line a second, to \
            this file.
            """,
            valueName: "file"))
    var record: String?

    func validate() throws {
        guard (1...1024).contains(clients) else { throw ValidationError("--clients must be 1...1024") }
        guard duration > 0, duration.isFinite else { throw ValidationError("--duration must be positive") }
        guard workingSet >= 16, workingSet <= 2048 else { throw ValidationError("--working-set must be 16...2048 pages") }
        guard (0...1).contains(churn) else { throw ValidationError("--churn must be 0...1") }
        guard paceMs >= 0, killEvery >= 0, pauseEvery >= 0, stuckAfter >= 5 else {
            throw ValidationError("--pace-ms, --kill-every and --pause-every must be 0 or more, --stuck-after 5 or more")
        }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let inspector: SoakInspector
        do {
            inspector = try await SoakInspector(socket: socket, maxResidentKiB: maxRss << 10, descriptorSlack: 16 + clients / 4)
        } catch {
            printError("edmm-sim soak: \(error)")
            throw ExitCode(69)
        }
        let fleet = SoakFleet(socket: socket, seed: seed, workingSet: workingSet, churn: churn, paceMs: paceMs)
        let clock = SoakClock()
        do {
            for _ in 0..<clients { try fleet.spawn() }
        } catch {
            printError("edmm-sim soak: starting clients: \(error)")
            fleet.reap(timeout: 0)
            throw ExitCode(1)
        }
        if fleet.await("ready", timeout: 120, { $0.ready }) {
            clock.report(
                "\(clients) clients registered; edmmd pid \(inspector.daemonPID), \(inspector.baseDescriptors) descriptors of its own")
        }
        let faults = inspector.machine.faults
        if !faults.isOff { clock.report("the simulated EPC injects faults: \(faults)") }
        var tally = await drive(fleet, inspector, clock)
        if tally.violation == nil && fleet.failures.isEmpty {
            fleet.broadcast(.stop)
            if fleet.await("stopped", timeout: 120, { $0.stopped }) {
                fleet.broadcast(.exit)
                fleet.reap(timeout: 60)
                do throws(SoakInspector.Violation) {
                    try await inspector.finalCheck()
                } catch {
                    tally.violation = error.description
                }
            }
        }
        fleet.reap(timeout: 0)
        if let record { write(inspector.csv, to: record) }
        try conclude(tally, fleet, inspector, clock)
    }

    /// What one soak did: kills, checks at rest, and the first broken invariant.
    private struct Tally {
        var kills = 0
        var pauses = 0
        var violation: String?
    }

    /// Seconds since the soak started, and progress lines stamped with them.
    private struct SoakClock {
        let start = ContinuousClock.now
        func elapsed() -> Double { (ContinuousClock.now - start).inSeconds }
        func report(_ what: String) { print("[\(Int(elapsed())) s] \(what)") }
    }

    /// Runs the fleet for `duration`: a check of edmmd every second, a kill every `killEvery`
    /// seconds, a pause for an exact check at rest every `pauseEvery`, a progress line every 10.
    private func drive(_ fleet: SoakFleet, _ inspector: SoakInspector, _ clock: SoakClock) async -> Tally {
        var tally = Tally()
        var random = SplitMix64(seed: seed ^ 0x5EED)
        var nextTick = 1.0
        var nextKill = killEvery > 0 ? killEvery : .infinity
        var nextPause = pauseEvery > 0 ? pauseEvery : .infinity
        var nextReport = 10.0
        soak: while fleet.failures.isEmpty && clock.elapsed() < duration {
            fleet.pump(timeoutMilliseconds: 100)
            let now = clock.elapsed()
            do throws(SoakInspector.Violation) {
                if now >= nextTick {
                    nextTick += 1
                    try await inspector.tick(at: now)
                    if let stuck = fleet.stuck(longerThan: .seconds(stuckAfter)).first { fleet.fail(stuck) }
                }
                if now >= nextKill {
                    nextKill += killEvery
                    if (try? fleet.killOne(&random)) == true { tally.kills += 1 }
                }
                if now >= nextPause {
                    nextPause = now + pauseEvery
                    fleet.broadcast(.pause)
                    guard fleet.await("paused", timeout: 120, { $0.paused || !$0.ready }) else { break soak }
                    try await inspector.quiescentCheck(clients: fleet.members.count)
                    tally.pauses += 1
                    fleet.broadcast(.resume)
                }
            } catch {
                tally.violation = error.description
                break soak
            }
            if now >= nextReport, let sample = inspector.samples.last {
                nextReport += 10
                clock.report(
                    """
                    \(sample.enclaves) enclaves, \(sample.committedPages) pages committed, \(sample.requests) requests; edmmd RSS \
                    \(sample.residentKiB >> 10) MiB, \(sample.descriptors) fds; \(fleet.checksPassed) self-checks, \(tally.pauses) checks \
                    at rest, \(tally.kills) kills, \(fleet.restarts) re-registrations
                    """
                )
            }
        }
        return tally
    }

    /// Prints the summary, and fails with every problem found.
    private func conclude(_ tally: Tally, _ fleet: SoakFleet, _ inspector: SoakInspector, _ clock: SoakClock) throws {
        let faults = inspector.machine.faults
        let counts = inspector.machine.faultCounts
        let injected = SimulatorFaults.Kind.allCases.filter { faults.rate($0) > 0 }
        var problems = (tally.violation.map { [$0] } ?? []) + fleet.failures
        if requireFaults {
            if injected.isEmpty { problems.append("--require-faults: edmmd's simulated EPC injects no faults") }
            for kind in injected where counts[kind]?.injected == 0 {
                problems.append("--require-faults: \(kind) (rate \(faults.rate(kind))) was never injected")
            }
        }
        let samples = inspector.samples
        let peakRSS = samples.map(\.residentKiB).max() ?? 0
        let peakFDs = samples.map(\.descriptors).max() ?? 0
        let firstRSS = samples.first.map { "\($0.residentKiB >> 10)" } ?? "?"
        let lastRSS = samples.last.map { "\($0.residentKiB >> 10)" } ?? "?"
        print(
            """
            soak: \(Int(clock.elapsed())) s, \(fleet.spawned) clients started (\(tally.kills) killed with SIGKILL), \
            \(fleet.restarts) re-registrations
              self-checks passed: \(fleet.checksPassed); exact checks at rest: \(tally.pauses)
              edmmd: RSS \(firstRSS) MiB at start, \(peakRSS >> 10) MiB at peak, \(lastRSS) MiB last; \
            descriptors peak \(peakFDs), \(inspector.baseDescriptors) of its own
              requests served: \(samples.last?.requests ?? 0)
            """)
        if !injected.isEmpty {
            let lines = injected.map { "\($0) \(counts[$0]?.injected ?? 0) of \(counts[$0]?.opportunities ?? 0)" }
            print("  faults injected: \(lines.joined(separator: ", "))")
        }
        guard problems.isEmpty else {
            for problem in problems { printError("SOAK FAILED: \(problem)") }
            throw ExitCode(1)
        }
        print("soak: passed")
    }

    private func write(_ text: String, to path: String) {
        guard let file = fopen(path, "w") else {
            return printError("edmm-sim soak: cannot write \(path): \(String(cString: strerror(errno)))")
        }
        fputs(text, file)
        fclose(file)
    }
}
