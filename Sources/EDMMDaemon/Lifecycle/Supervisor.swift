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
/// Concurrency: the reclaim policy and the interval belong to the core queue (`core.queue`),
/// where the timer fires.
final class Supervisor: Sendable {
    private let core: DaemonCore
    private let timer: SendableSource<any DispatchSourceTimer>
    private let plan: QueueBound<Plan>

    /// What the ticks keep between them.
    private final class Plan {
        var policy: PoolReclaimPolicy
        var interval: Duration

        init(_ settings: DaemonSettings) {
            policy = PoolReclaimPolicy(settings.reclaim)
            interval = settings.checkInterval
        }
    }

    init(core: DaemonCore) {
        self.core = core
        plan = QueueBound(Plan(core.settings), queue: core.queue)
        timer = .timer(on: core.queue)
        timer.activateIdle { [weak self] in self?.tick() }
    }

    func start() {
        core.queue.async { self.schedule(every: self.plan.value.interval) }
    }

    func stop() { timer.source.cancel() }

    /// New reclaim settings or interval (core queue).
    func apply(_ settings: DaemonSettings) {
        let plan = self.plan.value
        if settings.reclaim != plan.policy.configuration { plan.policy = PoolReclaimPolicy(settings.reclaim) }
        if settings.checkInterval != plan.interval {
            plan.interval = settings.checkInterval
            schedule(every: plan.interval)
        }
    }

    private func schedule(every interval: Duration) {
        let micros = Int(interval.microsecondsClamped)
        timer.source.schedule(
            deadline: .now() + .microseconds(micros), repeating: .microseconds(micros), leeway: .microseconds(micros / 10))
    }

    private func tick() {
        let plan = self.plan.value
        if let stall = core.faultInjection?.takeCoreStall() { blockingPause(stall) }
        core.notifier.watchdogTick()
        let now = MonotonicInstant.now
        if core.sampleRate(now: now) { core.notifier.status(statusLine()) }
        core.backend.maintain(now: now, logger: core.logger)
        reclaimPools(plan)
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
    private func reclaimPools(_ plan: Plan) {
        let enclaves = core.registry.all.map { ($0, $0.poolFigures) }
        let pools = enclaves.map { enclave, figures in
            PoolReclaimPolicy.EnclavePool(
                enclave: EnclaveID(enclave.handle), lastActivity: figures.lastActivity, pooledPages: figures.pages.pooled,
                epcPages: figures.pages.epcPages)
        }
        // Pages already on their way out are not counted again, or each tick would reclaim more.
        let leaving = enclaves.reduce(0) { $0 + $1.1.pages.trimming + $1.1.pages.removing }
        core.deviceReclaiming.store(core.backend.sampleReclaimActivity() ?? false, ordering: .relaxed)
        let orders = plan.policy.plan(enclaves: pools, occupancy: core.epcOccupancy(), leavingPages: leaving)
        core.underPressure.store(plan.policy.underPressure, ordering: .relaxed)
        let byID = Dictionary(uniqueKeysWithValues: enclaves.map { (EnclaveID($0.0.handle), $0) })
        for order in orders {
            guard let (enclave, figures) = byID[order.enclave] else { continue }
            let overThreshold = plan.policy.thresholdExcess(pooledPages: figures.pages.pooled, epcPages: figures.pages.epcPages) > 0
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
