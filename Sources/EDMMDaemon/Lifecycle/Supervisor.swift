import Dispatch
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc

/// The daemon's periodic work, every `[pressure] check_interval_ms` on the core queue: pool
/// reclaim (per-enclave threshold and machine-wide EPC pressure, with hysteresis), the request
/// rate, the service manager's status line and watchdog tick, and the sweep of simulated enclaves
/// whose processes died.
///
/// Concurrency: `policy` and the sampling instants belong to the core queue (`core.queue`), where
/// the timer fires.
final class Supervisor: @unchecked Sendable {
    private let core: DaemonCore
    private let timer: any DispatchSourceTimer
    private var policy: PoolReclaimPolicy
    private var interval: Duration
    private var lastSweep = MonotonicInstant.now
    private var warnedOfBusyLock = false

    init(core: DaemonCore) {
        self.core = core
        let settings = core.settings
        policy = PoolReclaimPolicy(settings.reclaim)
        interval = settings.checkInterval
        timer = DispatchSource.makeTimerSource(queue: core.queue)
        // Active from the start (libdispatch traps when an inactive source is released), idle
        // until `start`.
        timer.setEventHandler { @Sendable [weak self] in self?.tick() }
        timer.schedule(deadline: .distantFuture)
        timer.activate()
    }

    func start() {
        core.queue.async { self.schedule() }
    }

    func stop() { timer.cancel() }

    /// New reclaim settings or interval (core queue).
    func apply(_ settings: DaemonSettings) {
        dispatchPrecondition(condition: .onQueue(core.queue))
        if settings.reclaim != policy.configuration { policy = PoolReclaimPolicy(settings.reclaim) }
        if settings.checkInterval != interval {
            interval = settings.checkInterval
            schedule()
        }
    }

    private func schedule() {
        let micros = Int(interval.microsecondsClamped)
        timer.schedule(deadline: .now() + .microseconds(micros), repeating: .microseconds(micros), leeway: .microseconds(micros / 10))
    }

    private func tick() {
        dispatchPrecondition(condition: .onQueue(core.queue))
        if let stall = core.faultInjection?.takeCoreStall() { blockingPause(stall) }
        core.notifier.watchdogTick()
        let now = MonotonicInstant.now
        if core.sampleRate(now: now) { core.notifier.status(statusLine()) }
        if let machine = core.backend.machine, now.duration(since: lastSweep) >= .seconds(1) {
            lastSweep = now
            // Never wait for the machine lock here: this queue serves every client and pings the
            // watchdog, and a client can hold the lock for as long as it likes. A busy lock is
            // noted instead, and the sweep tried again a second later.
            noteMachineLock(heldBy: machine.sweepDeadEnclavesIfIdle() == nil ? Self.process(ofThread: machine.lockHolder) : nil, now: now)
        }
        reclaimPools()
    }

    /// The process a thread belongs to (the `Tgid:` of /proc/<tid>/status), or the thread id itself.
    private static func process(ofThread tid: Int32) -> Int32 {
        guard tid > 0, let status = readSmallFile("/proc/\(tid)/status") else { return tid }
        for line in status.split(separator: "\n") where line.hasPrefix("Tgid:") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { Int32($0) } ?? tid
        }
        return tid
    }

    /// Records whether the sweep found the machine lock held (by process `holder`); a lock held
    /// for 5 s is said once in the log.
    private func noteMachineLock(heldBy holder: Int32?, now: MonotonicInstant) {
        guard let holder else {
            core.machineLockBusy.withLock { $0 = nil }
            warnedOfBusyLock = false
            return
        }
        let since = core.machineLockBusy.withLock { busy in
            if busy == nil { busy = (now, holder) }
            return busy?.since ?? now
        }
        guard !warnedOfBusyLock, now.duration(since: since) >= .seconds(5) else { return }
        warnedOfBusyLock = true
        core.logger.warning(
            "the simulated EPC's lock has been held for 5 s, by process \(holder) (a client stopped or hung in a simulated instruction?): requests that need it wait; HELLO, STATUS and the watchdog do not")
    }

    /// One status line with live figures for the service manager.
    func statusLine() -> String {
        let committed = Page.bytes(core.quotas.machinePages)
        let total = Page.bytes(core.backend.epcTotalPages)
        let epc = total == 0 ? "\(committed >> 20) MiB EPC committed" : "\(committed >> 20) of \(total >> 20) MiB EPC committed"
        return "\(core.backend.mode) device: \(core.registry.count) enclaves, \(core.sessionCount) connections, \(epc), "
            + "\(Int(core.requestsPerSecond)) requests/s, \(core.counters.value(.ioctls)) ioctls"
            + (core.underPressure.load(ordering: .relaxed) ? ", EPC pressure" : "")
            + (core.machineLockBusy.withLock { $0 }.map { ", simulated EPC lock held by process \($0.holder)" } ?? "")
    }

    /// Asks the enclaves over their pool threshold, and under EPC pressure the least recently
    /// active ones, to give pool pages back.
    private func reclaimPools() {
        let enclaves = core.registry.all.map { ($0, $0.snapshot) }
        let pools = enclaves.map { enclave, snapshot in
            PoolReclaimPolicy.EnclavePool(
                enclave: EnclaveID(enclave.handle), lastActivity: snapshot.lastActivity, pooledPages: snapshot.pages.pooled,
                epcPages: snapshot.pages.epcPages)
        }
        // Pages already on their way out are not counted again, or each tick would reclaim more.
        let leaving = enclaves.reduce(0) { $0 + $1.1.pages.trimming + $1.1.pages.removing }
        var used: UInt64
        let total: UInt64
        if let machine = core.backend.machine?.stats {
            (used, total) = (machine.usedPages, machine.epcPages)
        } else {
            (used, total) = (core.quotas.machinePages, core.backend.epcTotalPages)
        }
        used -= min(used, leaving)
        // Unknown EPC size (kernel without sysfs figures): only the per-enclave threshold applies.
        let orders = policy.plan(enclaves: pools, machineUsedPages: total == 0 ? 0 : used, machineTotalPages: total == 0 ? 1 : total)
        core.underPressure.store(total > 0 && policy.underPressure, ordering: .relaxed)
        let byID = Dictionary(uniqueKeysWithValues: enclaves.map { (EnclaveID($0.0.handle), $0) })
        for order in orders {
            guard let (enclave, snapshot) = byID[order.enclave] else { continue }
            let overThreshold = policy.thresholdExcess(pooledPages: snapshot.pages.pooled, epcPages: snapshot.pages.epcPages) > 0
            enclave.reclaim(pages: order.pages, reason: overThreshold ? .poolThreshold : .epcPressure) { _ in }
        }
    }
}

/// Blocks the calling thread (fault injection only).
private func blockingPause(_ duration: Duration) {
    let (seconds, attoseconds) = duration.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
