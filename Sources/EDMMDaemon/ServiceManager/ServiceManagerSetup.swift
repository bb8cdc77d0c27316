import EDMMConfig
import Glibc
import Logging

extension DaemonOptions {
    /// What systemd offers, when it started this process: notifications, the control socket of
    /// socket activation, and the FD store with what the previous run kept. Said once in the log
    /// either way. Returns the metrics socket systemd passed (edmmd-metrics.socket), if any.
    public mutating func useServiceManager(config: DaemonConfig) -> Int32? {
        let inherited = InheritedDescriptors.fromSystemd()
        for problem in inherited.problems { logger.warning("\(problem)") }
        if let control = inherited.control {
            listener = .inherited(fd: control, path: InheritedDescriptors.boundPath(of: control))
            logger.info("socket activation: serving the control socket systemd passed")
        }
        storedDescriptors = inherited.stored
        guard SystemdNotifier.isAvailable else {
            logger.notice(
                """
                not started by systemd (no NOTIFY_SOCKET): no readiness, status or watchdog notifications, and no FD store (a restart \
                loses every registration)
                """
            )
            return inherited.metrics
        }
        let systemd = SystemdNotifier(pingWatchdog: config.systemd.watchdog)
        notifier = systemd
        // systemd >= 254 says how many descriptors the unit may store (FileDescriptorStoreMax=).
        let storeLimit = getenv("FDSTORE").map { String(cString: $0) }
        let fdStore: String
        if !config.systemd.fdStore {
            fdStore = "off ([systemd] fd_store = false)"
        } else if storeLimit == "0" {
            fdStore = "off (the unit has no FileDescriptorStoreMax=)"
        } else {
            descriptorStore = SystemdDescriptorStore()
            fdStore = "on"
        }
        let watchdog = systemd.watchdogInterval.map { "WATCHDOG=1 every \($0)" } ?? "no watchdog"
        logger.info("systemd: Type=notify readiness and status, \(watchdog), FD store \(fdStore)")
        if let interval = systemd.watchdogInterval, Duration.milliseconds(config.pressure.checkIntervalMillis) > interval {
            logger.warning("[pressure] check_interval_ms is longer than half of WatchdogSec=: the watchdog will fire")
        }
        return inherited.metrics
    }
}
