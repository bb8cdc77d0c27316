import Dispatch
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc

/// The daemon's periodic work, every `[pressure] check_interval_ms` on the core queue: pool
/// reclaim (per-enclave threshold and machine-wide EPC pressure, with hysteresis), the request
/// rate, the service manager's status line and watchdog tick, and the device's upkeep (the sweep
/// of simulated enclaves whose processes died).
///
/// Concurrency: `policy` and the sampling instants belong to the core queue (`core.queue`), where
/// the timer fires.
final class Supervisor: @unchecked Sendable {
    private let core: DaemonCore
    private let timer: any DispatchSourceTimer
    private var policy: PoolReclaimPolicy
    private var interval: Duration

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
        core.backend.maintain(now: now, logger: core.logger)
        reclaimPools()
    }

    /// One status line with live figures for the service manager.
    func statusLine() -> String {
        let committed = Page.bytes(core.quotas.machinePages)
        let total = Page.bytes(core.backend.epcTotalPages)
        let epc = total == 0 ? "\(committed >> 20) MiB EPC committed" : "\(committed >> 20) of \(total >> 20) MiB EPC committed"
        return "\(core.backend.mode) device: \(core.registry.count) enclaves, \(core.sessionCount) connections, \(epc), "
            + "\(Int(core.requestsPerSecond)) requests/s, \(core.counters.value(.ioctls)) ioctls"
            + (core.underPressure.load(ordering: .relaxed) ? ", EPC pressure" : "")
            + (core.backend.statusNote ?? "")
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
        var used = core.backend.epcUsedPages ?? core.quotas.machinePages
        let total = core.backend.epcTotalPages
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
