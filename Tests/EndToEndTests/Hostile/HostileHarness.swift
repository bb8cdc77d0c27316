import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import EDMMSystem
import Glibc
import SGXDevice
import SGXSimulator
import Synchronization
import Testing

/// One row of the hostile-input table: what a buggy or hostile client does, and what it must get.
struct HostileCase: Sendable, CustomTestStringConvertible {
    let name: String
    /// The whole edmmd.toml of the case's daemon (limits small enough for the attack to reach).
    var config = ""
    /// Runs on a thread of its own (it blocks on sockets) and states what it saw through `expect`.
    let attack: @Sendable (HostileContext) throws -> Void

    var testDescription: String { name }
}

/// What an attack has at hand: the daemon, the bystander's enclave, the simulated EPC. It records
/// expectations; the test reports them (the attack runs outside the test's task).
final class HostileContext: @unchecked Sendable {
    // Used by the attack's thread only, until the harness reads `checks` after it ended.
    let daemon: DaemonProcess
    let bystanderEnclave: EnclaveHandle
    let machine: SimulatedMachine
    private(set) var checks: [(passed: Bool, what: String)] = []

    init(daemon: DaemonProcess, bystanderEnclave: EnclaveHandle, machine: SimulatedMachine) {
        self.daemon = daemon
        self.bystanderEnclave = bystanderEnclave
        self.machine = machine
    }

    func expect(_ condition: Bool, _ what: String) { checks.append((condition, what)) }

    /// The attacker's connection, after HELLO unless `hello` is false.
    func connect(hello: Bool = true) throws -> RawConnection {
        let connection = try RawConnection(socketPath: daemon.socketPath)
        if hello { try connection.hello() }
        return connection
    }

    /// An enclave of the attacker's own, registered over `connection` with `pages` accepted pages
    /// (from offset 0 of its managed range, which is all of ELRANGE).
    func registeredEnclave(on connection: RawConnection, pages: UInt64) throws -> AttackerEnclave {
        let enclave = try AttackerEnclave(machine: machine)
        let request = RegisterRequest(base: enclave.base, size: enclave.size, label: "attacker", preheatPages: pages)
        let reply = try connection.reply(to: try connection.send([.register(request)], descriptors: [enclave.fd])[0])
        guard case .success(.register(let registered)) = reply.outcome else { throw HostileSetupFailure("REGISTER: \(reply.outcome)") }
        enclave.handle = registered.enclave
        for range in registered.preheat { enclave.accept(range, [.pageType(.reg), .pending, .r, .w]) }
        return enclave
    }
}

struct HostileSetupFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A simulated enclave of the attacker: built, initialized, mapped, with a CPU to EACCEPT.
final class AttackerEnclave {
    let enclave: SimulatedEnclave
    let cpu: EnclaveCPU
    var handle: EnclaveHandle = 0

    init(machine: SimulatedMachine, size: UInt64 = 1 << 22) throws {
        enclave = try SimulatedEnclave.create(machine: machine, base: size, size: size)
        guard enclave.initialize() == 0, enclave.mmap(address: enclave.base, length: size, protection: .rw) == 0 else {
            throw HostileSetupFailure("building the attacker's enclave")
        }
        cpu = try enclave.cpu()
    }

    var fd: Int32 { enclave.fd }
    var base: UInt64 { enclave.base }
    var size: UInt64 { enclave.size }

    func accept(_ range: WireRange, _ flags: SecInfoFlags) {
        for offset in stride(from: range.offset, to: range.offset + range.length, by: Int(Page.size)) {
            _ = cpu.eaccept(base + offset, flags: flags)
        }
    }
}

/// A client doing real work all through an attack: allocations, restrictions and relaxations,
/// trims and frees, in batches; every one must succeed.
final class Bystander: Sendable {
    let host: SimulatedEnclaveHost
    private let state = Mutex(State())
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    private struct State {
        var stop = false
        var batches = 0
        var failures: [String] = []
    }

    init(_ host: SimulatedEnclaveHost) {
        self.host = host
        task.withLock { $0 = Task { await self.work() } }
    }

    var batches: Int { state.withLock { $0.batches } }

    private func work() async {
        var round: UInt64 = 0
        while !state.withLock({ $0.stop }) {
            round += 1
            let results = await host.perform([.allocate(pages: 1 + round % 8), .allocate(pages: 4)])
            var grants: [PageRange] = []
            for result in results {
                switch result {
                case .success(let outcome): if let granted = outcome.granted { grants.append(granted) }
                case .failure(let error): note("ALLOCATE: \(error)")
                }
            }
            var next: [HostOperation] = []
            for (index, grant) in grants.enumerated() {
                if round % 3 == 0 && index == 0 {
                    next += [.restrict(grant, to: .read)]
                } else {
                    next.append(index == 0 ? .trim(grant) : .free(grant))
                }
            }
            for (operation, result) in zip(next, await host.perform(next)) {
                if case .failure(let error) = result { note("\(operation): \(error)") }
            }
            if round % 3 == 0, let restricted = grants.first {
                for result in await host.perform([.relax(restricted, to: .rw)]) {
                    if case .failure(let error) = result { note("RELAX: \(error)") }
                }
                _ = await host.perform([.trim(restricted)])
            }
            state.withLock { $0.batches += 1 }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    private func note(_ failure: String) { state.withLock { $0.failures.append(failure) } }

    /// Stops after the current batch; returns every failure it met.
    func stop() async -> [String] {
        state.withLock { $0.stop = true }
        await task.withLock { $0 }?.value
        return state.withLock { $0.failures } + host.stats.asyncErrors
    }
}

/// Runs one case: a fresh edmmd, a bystander at work, the attack, then the checks every case
/// shares: the daemon is up and answers, the bystander's every request succeeded and its ledger
/// equals its EPCM and its own record, edmmd holds no descriptor and no page more than before
/// the attack, and it still exits 0 on SIGTERM.
func runHostile(_ hostile: HostileCase) async throws {
    let daemon = try DaemonProcess(config: hostile.config)
    let host = try await daemon.host("bystander") { $0.size = 1 << 24 }
    let bystander = Bystander(host)
    let machine = try SimulatedMachine.open(fd: try #require(host.connection.machineDescriptor))
    for _ in 0..<2000 where bystander.batches < 3 { try await Task.sleep(for: .milliseconds(5)) }
    let descriptorsBefore = daemon.openDescriptors()
    let batchesBefore = bystander.batches

    let context = HostileContext(daemon: daemon, bystanderEnclave: host.handle, machine: machine)
    let attackError = await onOwnThread { try hostile.attack(context) }
    for check in context.checks { #expect(check.passed, "\(check.what)") }
    #expect(attackError == nil, "the attack could not run: \(attackError.map { "\($0)" } ?? "")")

    for _ in 0..<2000 where bystander.batches <= batchesBefore { try await Task.sleep(for: .milliseconds(5)) }
    let failures = await bystander.stop()
    #expect(failures.isEmpty, "the bystander's requests failed: \(failures.prefix(5))")
    #expect(bystander.batches > batchesBefore, "the bystander made no progress since the attack began")
    #expect(kill(daemon.pid, 0) == 0, "edmmd is gone")

    // Every connection of the attacker is closed now; edmmd must be back to the bystander alone.
    var status = try await host.connection.status()
    for _ in 0..<400 where status.connections != 1 || status.enclaves != 1 {
        try await Task.sleep(for: .milliseconds(25))
        status = try await host.connection.status()
    }
    #expect(
        status.connections == 1 && status.enclaves == 1, "edmmd still serves \(status.connections) connections, \(status.enclaves) enclaves"
    )
    var descriptors = daemon.openDescriptors()
    for _ in 0..<400 where descriptors != descriptorsBefore {
        try await Task.sleep(for: .milliseconds(25))
        descriptors = daemon.openDescriptors()
    }
    #expect(descriptors == descriptorsBefore, "edmmd holds \(descriptors) descriptors, \(descriptorsBefore) before the attack")
    await expectLedgersMatch([host])
    let stats = try await host.connection.stats(host.handle).summary
    let bystanderPages = stats.committedPages + stats.pooledPages + stats.trimmingPages + stats.removingPages + stats.tcsPages
    status = try await host.connection.status()
    #expect(
        status.epcCommittedBytes == bystanderPages * Page.size,
        "edmmd accounts \(status.epcCommittedBytes) bytes, the bystander holds \(bystanderPages) pages")
    host.close()
    #expect(daemon.stop() == 0, "edmmd did not exit 0 on SIGTERM")
}

/// Runs blocking code on an OS thread of its own, so it never holds up the concurrency pool.
private func onOwnThread(_ body: @escaping @Sendable () throws -> Void) async -> (any Error)? {
    await withCheckedContinuation { (continuation: CheckedContinuation<(any Error)?, Never>) in
        let started = OSThread.startDetached {
            do {
                try body()
                continuation.resume(returning: nil)
            } catch {
                continuation.resume(returning: error)
            }
        }
        if !started { continuation.resume(returning: HostileSetupFailure("no thread for the attack")) }
    }
}
