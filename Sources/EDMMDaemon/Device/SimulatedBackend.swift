import EDMMConfig
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Logging
import SGXDevice
import SGXSimulator
import Synchronization

/// The simulated EPC in shared memory: clients create their enclaves in it (HELLO hands its
/// descriptor to each), and edmmd drives them as it drives kernel enclaves, which it also
/// accepts in this mode. One of the two files of the daemon that name the simulator.
final class SimulatedBackend: DeviceBackend {
    let reason: String
    let epcTotalPages: UInt64
    let epc: SimulatedEPC
    private let kernel: KernelDeviceAccess
    /// When the supervisor last swept the machine, and since when (and by whom) it found the
    /// machine lock held (nil: free at its last look).
    private let upkeep = Mutex(Upkeep())

    private struct Upkeep {
        var lastSweep = MonotonicInstant.now
        var lockBusy: (since: MonotonicInstant, holder: Int32)?
        var warnedOfBusyLock = false
        /// EWBs at the last reclaim sample (the first: at start).
        var lastWriteBacks: UInt64 = 0
    }

    /// The simulated EPC the previous daemon stored (`stored`), or a new one as `config` says. A
    /// stored machine keeps the faults it was created with (they live in its region).
    init(
        _ config: DaemonConfig, reason: String, stored: consuming OwnedDescriptor?, kernel: KernelDeviceAccess, logger: Logger
    ) throws(StartupError) {
        var machine: SimulatedMachine?
        if let stored {
            do {
                machine = try SimulatedMachine.open(fd: stored.raw)
            } catch {
                logger.error("the stored simulated EPC does not open (\(error)); starting a new one")
            }
        }
        if machine == nil {
            do {
                machine = try SimulatedMachine.create(
                    .init(
                        epcPages: config.simulator.epcBytes / Page.size,
                        enclaveCapacity: UInt32(clamping: config.simulator.maxEnclaves), sgx2: true,
                        faults: SimulatorFaults(config.simulator.faults)))
            } catch {
                throw .simulator("cannot create the simulated EPC: \(error)")
            }
        }
        guard let machine else { throw .simulator("cannot create the simulated EPC") }
        let faults = machine.faults
        self.reason = faults.isOff ? reason : "\(reason); injecting faults \(faults)"
        epcTotalPages = machine.epcPages
        epc = SimulatedEPC(machine)
        upkeep.withLock { $0.lastWriteBacks = machine.stats.ewb }
        self.kernel = kernel
    }

    var mode: WireDeviceKind { .simulated }
    var machine: SimulatedMachine { epc.machine }
    var epcUsedPages: UInt64? { machine.stats.usedPages }

    /// The simulated EPC evicts synchronously: a page written back (EWB) since the last sample is
    /// its reclaim at work, as ksgxd's is on Linux.
    func sampleReclaimActivity() -> Bool? {
        let writeBacks = machine.stats.ewb
        return upkeep.withLock { upkeep in
            defer { upkeep.lastWriteBacks = writeBacks }
            return writeBacks > upkeep.lastWriteBacks
        }
    }

    var statusCounters: [WireCounter] {
        let machine = machine.stats
        let busy = upkeep.withLock { $0.lockBusy }
        return [
            WireCounter("sim_epc_pages", machine.epcPages), WireCounter("sim_used_pages", machine.usedPages),
            WireCounter("sim_ewb", machine.ewb), WireCounter("sim_eldu", machine.eldu),
            WireCounter("sim_alive_enclaves", UInt64(machine.aliveEnclaves)), WireCounter("sim_sweeps", machine.sweeps),
            WireCounter("sim_lock_busy_ms", busy.map { MonotonicInstant.now.duration(since: $0.since).microsecondsClamped / 1000 } ?? 0),
            WireCounter("sim_lock_holder", UInt64(UInt32(bitPattern: busy?.holder ?? 0))),
        ]
    }

    var statusNote: String? {
        upkeep.withLock { $0.lockBusy }.map { ", simulated EPC lock held by process \($0.holder)" }
    }

    /// Tries the descriptor as a kernel SGX enclave, then as a simulated enclave of this daemon's
    /// machine (which duplicates it: the received descriptor is closed). Anything else is
    /// bad-descriptor, with both reasons.
    func openEnclave(_ descriptor: consuming OwnedDescriptor) throws(WireError) -> any OpenedEnclave {
        guard let kernelProblem = kernel.check(descriptor) else {
            switch kernel.open(descriptor) {
            case .success(let enclave): return enclave
            case .failure(let problem): throw WireError(.badDescriptor, "not an SGX enclave descriptor: \(problem)")
            }
        }
        do {
            return SimulatedEnclaveHandle(try epc.openEnclave(fd: descriptor.raw))
        } catch {
            throw WireError(
                .badDescriptor, "neither an SGX enclave (\(kernelProblem)) nor a simulated enclave of this daemon's EPC (\(error))")
        }
    }

    var helloDescriptor: (any SharedDeviceDescriptor)? { machine }
    var takeOver: (any DeviceTakeOver)? { epc }
    var storableDescriptor: Int32? { machine.fd }

    /// Sweeps the enclaves of dead processes about once a second. Never waits for the machine
    /// lock: the core queue serves every client and pings the watchdog, and a client can hold the
    /// lock for as long as it likes. A busy lock is noted instead, and the sweep tried again.
    func maintain(now: MonotonicInstant, logger: Logger) {
        let due = upkeep.withLock { upkeep in
            guard now.duration(since: upkeep.lastSweep) >= .seconds(1) else { return false }
            upkeep.lastSweep = now
            return true
        }
        guard due else { return }
        let machine = self.machine
        let holder = machine.sweepDeadEnclavesIfIdle() == nil ? Self.process(ofThread: machine.lockHolder) : nil
        let warn = upkeep.withLock { upkeep -> Int32? in
            guard let holder else {
                upkeep.lockBusy = nil
                upkeep.warnedOfBusyLock = false
                return nil
            }
            if upkeep.lockBusy == nil { upkeep.lockBusy = (now, holder) }
            let since = upkeep.lockBusy?.since ?? now
            guard !upkeep.warnedOfBusyLock, now.duration(since: since) >= .seconds(5) else { return nil }
            upkeep.warnedOfBusyLock = true
            return holder
        }
        if let warn {
            logger.warning(
                """
                the simulated EPC's lock has been held for 5 s, by process \(warn) (a client stopped or hung in a simulated \
                instruction?): requests that need it wait; HELLO, STATUS and the watchdog do not
                """
            )
        }
    }

    /// The process a thread belongs to (the `Tgid:` of /proc/<tid>/status), or the thread id itself.
    private static func process(ofThread tid: Int32) -> Int32 {
        guard tid > 0, let status = readSmallFile("/proc/\(tid)/status") else { return tid }
        for line in status.split(separator: "\n") where line.hasPrefix("Tgid:") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { Int32($0) } ?? tid
        }
        return tid
    }
}

/// A simulated enclave the daemon opened: its ioctls, its EPCM, its counters.
final class SimulatedEnclaveHandle: OpenedEnclave, EPCMInspector {
    let enclave: SimulatedEnclave
    /// Computed once: REGISTER looks it up among every registered enclave.
    let identity: SimulatedEnclave.Identity

    init(_ enclave: SimulatedEnclave) {
        self.enclave = enclave
        identity = enclave.identity
    }

    var kind: WireDeviceKind { .simulated }
    var device: any EnclaveDevice { enclave }
    var storableDescriptor: Int32 { enclave.fd }
    var elrange: (base: UInt64, size: UInt64)? { (enclave.base, enclave.size) }
    var epcm: (any EPCMInspector)? { self }

    var statsCounters: [WireCounter] {
        let counters = enclave.counters
        return SimCounter.allCases.map { WireCounter("sim_\($0)", counters[$0]) }
            + [WireCounter("sim_resident_pages", enclave.residentPages)]
    }

    /// One entry of the machine's enclave table: every descriptor of the enclave (a dup, the
    /// memfd opened again) names the same.
    var identityKey: AnyHashable? { identity }

    func isSameEnclave(as other: any OpenedEnclave) throws(IdentityUnknown) -> Bool {
        guard let other = other as? SimulatedEnclaveHandle else { return false }
        return identity == other.identity
    }

    func close() { enclave.closeReleasingIfOrphaned() }

    func page(_ index: UInt64) -> EPCMPage { EPCMPage(enclave.pageInfo(offset: index << Page.shift)) }

    var presentPages: UInt64 { enclave.presentPages }

    func forEachPresentPage(in ranges: [PageRange], maxEntries: UInt64, _ visit: (UInt64, EPCMPage) -> Bool) -> EPCMWalk {
        let walk = enclave.forEachPresentPage(in: ranges, maxEntries: maxEntries) { visit($0, EPCMPage($1)) }
        var result = EPCMWalk(entriesVisited: walk.entriesVisited)
        if case .budget(let wanted) = walk.stopped { result.budgetWanted = wanted }
        return result
    }
}

extension EPCMPage {
    init(_ info: PageInfo) {
        self.init(state: info.state, permissions: info.permissions)
    }
}

extension SimulatedMachine: SharedDeviceDescriptor {}

extension SimulatedEPC: DeviceTakeOver {
    func adopt(_ descriptor: borrowing OwnedDescriptor) throws(WireError) -> (
        handed: any SharedDeviceDescriptor, replaced: (taken: String, previous: String)?
    ) {
        let before = machine
        let machine = try adopt(fd: descriptor.raw)
        return (machine, machine === before ? nil : (machine.uuidString, before.uuidString))
    }
}

extension SimulatorFaults {
    init(_ faults: DaemonConfig.Faults) {
        self.init(
            seed: faults.seed,
            rates: [
                .loadBusy: faults.loadBusy, .reclaimerHoldsPage: faults.reclaimerHoldsPage, .eaugFailure: faults.eaugFailure,
                .pageConflict: faults.pageConflict,
            ])
    }
}

extension Daemon {
    /// The simulated EPC in use now, in simulated mode (a restarted daemon may have taken over
    /// its predecessor's).
    public var simulatedMachine: SimulatedMachine? { (core.backend as? SimulatedBackend)?.machine }
}
