import Dispatch
import EDMMCore
import EDMMDaemon
import EDMMProtocol
import Glibc
import SGXSimulator
import Synchronization
import Testing

/// A real second process (`edmm-sim sim-helper`) on the daemon's simulated EPC that takes one of
/// its robust locks and stops itself (SIGSTOP), as a client does when Ctrl-Z or a debugger catches
/// it in the middle of a simulated instruction.
final class StoppedLockHolder {
    let pid: pid_t
    private let toChild: Int32
    private let fromChild: Int32
    private var continued = false

    enum Lock: String { case machine, enclave }

    init(machine: SimulatedMachine, enclave: SimulatedEnclave, holding lock: Lock) throws {
        let path = ChildProcess.productPath("edmm-sim")
        guard access(path, X_OK) == 0 else { throw TestClient.Failure.unexpected("\(path) not found: run swift build first") }
        var input: [Int32] = [0, 0]
        var output: [Int32] = [0, 0]
        guard pipe(&input) == 0, pipe(&output) == 0 else { throw TestClient.Failure.system("pipe", errno) }
        for fd in input + output { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, machine.fd, 3)
        posix_spawn_file_actions_adddup2(&actions, enclave.fd, 4)
        let args = [path, "sim-helper", "--machine-fd", "3", "--enclave-fd", "4"]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, path, &actions, nil, &argv, environ)
        close(input[0])
        close(output[1])
        guard rc == 0 else { throw TestClient.Failure.system("posix_spawn", rc) }
        pid = child
        toChild = input[1]
        fromChild = output[0]
        guard readLine() == #"{"ready":true}"# else { throw TestClient.Failure.unexpected("the helper did not start") }
        let line = Array("{\"op\":\"stop_holding_lock\",\"enclave\":\"A\",\"type\":\"\(lock.rawValue)\"}\n".utf8)
        _ = line.withUnsafeBytes { write(toChild, $0.baseAddress, $0.count) }
        guard readLine() == #"{"holding":true}"# else { throw TestClient.Failure.unexpected("the helper did not take the lock") }
        guard eventually(timeout: .seconds(5), { processState(child) == "T" }) else {
            throw TestClient.Failure.unexpected("the helper did not stop")
        }
    }

    /// SIGCONT: the helper releases the lock and answers.
    func resume() -> String? {
        guard !continued else { return nil }
        continued = true
        kill(pid, SIGCONT)
        return readLine()
    }

    deinit {
        if !continued { kill(pid, SIGCONT) }
        close(toChild)
        close(fromChild)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    private func readLine() -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while read(fromChild, &byte, 1) == 1 {
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }
}

/// No queue that serves other clients waits on a lock a client can hold: a stopped client holding
/// the simulated EPC's machine lock (or its enclave's lock) stalls neither HELLO, STATUS, METRICS
/// nor the watchdog (issue 10).
@Suite struct StoppedLockHolderTests {
    final class WatchdogCounter: ServiceNotifier {
        let ticks = Atomic<Int>(0)
        func ready(status: String) {}
        func status(_ text: String) {}
        func reloading() {}
        func stopping() {}
        func watchdogTick() { ticks.add(1, ordering: .relaxed) }
    }

    /// Runs `body` on another thread and waits at most `timeout` for it.
    private func within<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () -> T) -> T? {
        let result = Mutex<T?>(nil)
        DispatchQueue.global().async { result.withLock { $0 = body() } }
        _ = eventually(timeout: timeout) { result.withLock { $0 != nil } }
        return result.withLock { $0 }
    }

    @Test(arguments: [StoppedLockHolder.Lock.machine, .enclave])
    func aStoppedClientHoldingASimulatedEPCLockStallsNoOtherClientNorTheWatchdog(_ lock: StoppedLockHolder.Lock) async throws {
        let watchdog = WatchdogCounter()
        try await withDaemon({ $0.pressure.checkIntervalMillis = 20 }, notifier: watchdog) { daemon in
            let owner = try daemon.connect()
            let machine = try daemon.machine(from: owner)
            let enclave = try TestEnclave(machine: machine)
            let (handle, grant) = try owner.registerWithAcceptedPages(enclave)
            let another = try TestEnclave(machine: machine, base: 1 << 34)
            let latecomer = try daemon.connect()

            let holder = try StoppedLockHolder(machine: machine, enclave: enclave.enclave, holding: lock)
            // The latecomer's REGISTER needs the machine lock: it waits, on its own connection.
            let registering = try latecomer.send([another.registerRequest(label: "late")], descriptors: [another.fd])
            // The owner's TRIM makes its enclave's queue run EMODT, which waits for the lock.
            let trimming = try owner.send([.trim(RangeRequest(enclave: handle, range: grant.fresh[0])), .sync(handle)])

            let ticks = watchdog.ticks.load(ordering: .relaxed)
            let fresh = try TestClient(path: daemon.socketPath)
            let hello = try fresh.call(.hello(HelloRequest(clientName: "while-stopped")), timeout: .seconds(3))
            #expect(hello.error == nil)
            // A viewer's STATS of the stuck enclave waits for it, not the viewer's connection.
            let viewing = try fresh.send([.stats(handle)])
            let status = try fresh.call(.status, timeout: .seconds(3))
            #expect(status.error == nil)
            #expect(eventually(timeout: .seconds(3)) { watchdog.ticks.load(ordering: .relaxed) >= ticks + 10 })
            let snapshot = daemon.daemon
            #expect(within(.seconds(3)) { snapshot.snapshot().enclaves.count } ?? 0 >= 1)
            let list = try fresh.call(.enclaves(EnclaveListRequest()), timeout: .seconds(3))
            #expect(list.error == nil)
            if lock == .machine {
                // STATUS says who holds the simulated EPC, once the supervisor's sweep found it held.
                func lockHolder() throws -> UInt64? {
                    guard case .success(.status(let status)) = try fresh.call(.status, timeout: .seconds(3)).outcome else { return nil }
                    return (status.counter("sim_lock_busy_ms") ?? 0) > 0 ? status.counter("sim_lock_holder") : nil
                }
                let pid = UInt64(holder.pid)
                #expect(try eventually(timeout: .seconds(5)) { try lockHolder() == pid })
            }

            #expect(holder.resume() == #"{"ok":true}"#)
            #expect(try latecomer.response(to: registering[0]).error == nil)
            #expect(try owner.responses(to: trimming).allSatisfy { $0.error == nil })
            #expect(try fresh.response(to: viewing[0]).error == nil)
        }
    }

    /// A stop while an enclave's queue waits on a lock a stopped client holds still ends: each of
    /// its waits has a deadline.
    @Test func aStopEndsWithinItsDeadlinesWhileAStoppedClientHoldsAnEnclavesLock() async throws {
        let daemon = try TestDaemon()
        let owner = try daemon.connect()
        let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
        let (handle, grant) = try owner.registerWithAcceptedPages(enclave)
        let holder = try StoppedLockHolder(machine: try daemon.machine(from: owner), enclave: enclave.enclave, holding: .enclave)
        _ = try owner.send([.trim(RangeRequest(enclave: handle, range: grant.fresh[0])), .sync(handle)])
        let stopped = Atomic<Bool>(false)
        Task {
            await daemon.daemon.shutdown(drainTimeout: .milliseconds(500))
            stopped.store(true, ordering: .releasing)
        }
        // The holder stays stopped while this waits: a stop that waited on it would never end. The
        // bound is generous because the whole suite runs in parallel on two cores, where the
        // stopping task itself may wait seconds for a thread.
        let ended = await waitUntil(timeout: .seconds(60)) { stopped.load(ordering: .acquiring) }
        #expect(holder.resume() == #"{"ok":true}"#)
        #expect(ended, "the stop waited for the stopped client")
        _ = await waitUntil { stopped.load(ordering: .acquiring) }
        await daemon.stop()
    }
}
