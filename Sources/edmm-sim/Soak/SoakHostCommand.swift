import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc
import Synchronization

/// `edmm-sim soak-host`: one client process of `edmm-sim soak`. It registers a simulated enclave
/// and does random work on it (a workload of `edmm-sim run` or every verb at random), checks
/// itself about once a second (enclave at rest, EPCM against its own record and edmmd's ledger),
/// now and then gives its enclave up and registers a new one, and pauses when asked so the soak
/// can check the whole daemon at rest. Anything that must not happen is reported as `failed`.
struct SoakHostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak-host", abstract: "One client of `edmm-sim soak` (internal).", shouldDisplay: false)

    @Option var socket: String
    @Option var seed: UInt64
    @Option var label: String
    @Option var workingSet: UInt64
    /// Chance, per batch, of giving the enclave up and registering a new one.
    @Option var churn: Double
    /// Pause between batches, in milliseconds (0: none).
    @Option var paceMs: Int

    /// Errors edmmd may answer a well-formed request of this host with: ALLOCATE refused by a
    /// quota (the EPC is shared by every host), for want of room, or over pages still in use or
    /// on their way out (ALLOCATE at a random address). Anything else is a failure.
    static let expectedRefusals: Set<WireErrorCode> = [.quotaExceeded, .outOfRange, .invalidPageState]

    func run() async throws {
        signal(SIGINT, SIG_IGN)
        let channel = SoakChannel()
        var rng = SplitMix64(seed: seed)
        var session: SoakSession
        do {
            session = try await SoakSession.start(self, generation: 0, rng: &rng)
        } catch {
            fail(channel, ["\(label): registering: \(error)"])
        }
        channel.send(SoakLine(.ready, enclave: session.host.handle))
        let status = Status(session.host)
        let progress = Task { await status.report(to: channel) }
        defer { progress.cancel() }

        var refusals: UInt64 = 0
        var nextCheck = ContinuousClock.now + .milliseconds(Int64(rng.int(500...1500)))
        var generation = 0
        work: while true {
            switch channel.poll() {
            case .pause?:
                status.phase.withLock { $0 = "pausing" }
                let problems = await session.rest()
                guard problems.isEmpty else { fail(channel, problems) }
                channel.send(SoakLine(.paused, enclave: session.host.handle))
                status.phase.withLock { $0 = "paused" }
                if await channel.next() != .resume { break work }
                status.phase.withLock { $0 = "working" }
            case .stop?, .exit?:
                break work
            case .resume?, nil:
                break
            }
            if ContinuousClock.now >= nextCheck {
                status.phase.withLock { $0 = "checking" }
                let problems = await session.check()
                var line = SoakLine(.check, enclave: session.host.handle, problems: problems)
                line.refusals = refusals
                channel.send(line)
                guard problems.isEmpty else { fail(channel, problems) }
                nextCheck = ContinuousClock.now + .seconds(1)
                status.phase.withLock { $0 = "working" }
            }
            if rng.chance(churn) {
                status.phase.withLock { $0 = "re-registering" }
                generation += 1
                if let problem = await session.end(cleanly: rng.chance(0.5)) { fail(channel, [problem]) }
                do {
                    session = try await SoakSession.start(self, generation: generation, rng: &rng)
                } catch {
                    fail(channel, ["registering a new enclave: \(error)"])
                }
                status.host.withLock { $0 = session.host }
                channel.send(SoakLine(.restarted, enclave: session.host.handle))
                status.phase.withLock { $0 = "working" }
            }
            let outcome = await session.step(&rng)
            status.requests.add(outcome.requests, ordering: .relaxed)
            refusals += outcome.refusals
            guard outcome.problems.isEmpty else { fail(channel, outcome.problems) }
            if paceMs > 0 { try? await Task.sleep(for: .milliseconds(paceMs)) }
        }
        status.phase.withLock { $0 = "stopping" }
        let problems = await session.check()
        channel.send(SoakLine(.stopped, enclave: session.host.handle, problems: problems))
        guard problems.isEmpty else { throw ExitCode(1) }
        while await channel.next() != .exit {}
        do {
            try await session.host.unregister()
        } catch {
            session.host.close()
        }
    }

    /// What the host is doing, for the progress line it sends every second.
    private final class Status: Sendable {
        let host: Mutex<SimulatedEnclaveHost>
        let phase = Mutex("working")
        let requests = Atomic<UInt64>(0)

        init(_ host: SimulatedEnclaveHost) { self.host = Mutex(host) }

        /// Sends a progress line every second until cancelled.
        func report(to channel: SoakChannel) async {
            while !Task.isCancelled {
                var line = SoakLine(.progress, enclave: host.withLock { $0.handle })
                line.phase = phase.withLock { $0 }
                line.waitingFor = Dictionary(
                    uniqueKeysWithValues: host.withLock { $0.connection.requestsInFlight }.map { ($0.key.description, $0.value) })
                line.requests = requests.load(ordering: .relaxed)
                channel.send(line)
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func fail(_ channel: SoakChannel, _ problems: [String]) -> Never {
        channel.send(SoakLine(.failed, problems: problems))
        Glibc.exit(1)
    }
}

/// One registered enclave of a soak host and the workload driving it.
struct SoakSession {
    let host: SimulatedEnclaveHost
    var workload: any Workload
    var heap = Heap()
    /// Errors the host collected before the last check (fire-and-forget failures, notices).
    var reportedAsyncErrors = 0

    static func start(_ options: SoakHostCommand, generation: Int, rng: inout SplitMix64) async throws(EnclaveHostError) -> SoakSession {
        var blueprint = EnclaveBlueprint(
            label: "\(options.label).\(generation)", size: 1 << 24, managedOffset: 1 << 20, preheatPages: rng.pages(0...16),
            fireAndForget: rng.chance(0.5), deferTrimAccepted: rng.chance(0.5))
        let host: SimulatedEnclaveHost
        do {
            host = try await SimulatedEnclaveHost.launch(socketPath: options.socket, blueprint: blueprint, clientName: "edmm-sim soak")
        } catch .client(.daemon(let error)) where error.code == .quotaExceeded {
            // The EPC is full: the preheat is refused, a registration without one is not.
            blueprint.preheatPages = 0
            host = try await SimulatedEnclaveHost.launch(socketPath: options.socket, blueprint: blueprint, clientName: "edmm-sim soak")
        }
        let workloads: [any Workload] =
            WorkloadKind.allCases.map { $0.make(workingSet: options.workingSet) }
            + [ChaosWorkload(workingSet: options.workingSet, managed: blueprint.managedPages)]
        var session = SoakSession(host: host, workload: workloads[rng.int(0...(workloads.count - 1))])
        // The preheat grant is the enclave's first block.
        if let granted = host.tracker.runs(in: blueprint.managedPages).first(where: { $0.state != nil })?.range {
            session.heap.add(Block(range: granted))
        }
        return session
    }

    struct StepOutcome {
        var requests: UInt64 = 0
        var refusals: UInt64 = 0
        var problems: [String] = []
    }

    /// One batch of the workload; every failure other than an expected ALLOCATE refusal is a problem.
    mutating func step(_ rng: inout SplitMix64) async -> StepOutcome {
        let steps = workload.next(&heap, &rng)
        guard !steps.isEmpty else { return StepOutcome() }
        let results = await host.perform(steps.map(\.operation))
        var outcome = StepOutcome(requests: UInt64(steps.count))
        for (step, result) in zip(steps, results) {
            guard case .failure(let error) = result else { continue }
            if step.operation.isAllocation, case .client(.daemon(let wire)) = error,
                SoakHostCommand.expectedRefusals.contains(wire.code)
            {
                outcome.refusals += 1
            } else {
                outcome.problems.append("\(step.operation): \(error)")
            }
        }
        _ = heap.apply(steps, results, &rng)
        return outcome
    }

    /// Brings the enclave to rest: TRIM_ACCEPTED backlog, SYNC, RECLAIM notices honoured.
    func rest() async -> [String] {
        do {
            try await host.sync()
        } catch {
            return ["SYNC: \(error)"]
        }
        await host.settle()
        return []
    }

    /// The self-check: at rest, the EPCM equals the enclave's own record and edmmd's ledger, no
    /// reply was unsafe, and nothing failed on the side.
    mutating func check() async -> [String] {
        let verification = await host.verify()
        var problems = verification.problems + verification.epcm.examples + (verification.ledger?.problems ?? [])
        if !verification.matches && problems.isEmpty { problems.append("the EPCM does not match (no details)") }
        let stats = host.stats
        problems += stats.violations.map { "unsafe reply: \($0)" }
        problems += stats.asyncErrors.dropFirst(reportedAsyncErrors)
        reportedAsyncErrors = stats.asyncErrors.count
        return problems.map { "\(host.blueprint.label) (enclave \(host.handle)): \($0)" }
    }

    /// Gives the enclave up: UNREGISTER, or just closing the connection (edmmd unregisters it).
    /// Returns a problem if the UNREGISTER failed.
    func end(cleanly: Bool) async -> String? {
        guard cleanly else {
            host.close()
            return nil
        }
        do {
            try await host.unregister()
            return nil
        } catch {
            host.close()
            return "\(host.blueprint.label): UNREGISTER: \(error)"
        }
    }
}

extension HostOperation {
    var isAllocation: Bool {
        switch self {
        case .allocate, .allocateAt: true
        default: false
        }
    }
}
