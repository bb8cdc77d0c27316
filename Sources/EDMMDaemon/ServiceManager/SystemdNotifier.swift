import Synchronization

/// The service notifier under systemd (`Type=notify`): sd_notify messages to NOTIFY_SOCKET.
///
/// READY=1 comes from `Daemon.start` once the control socket accepts; STATUS= from the
/// supervisor about once a second; WATCHDOG=1 from the supervisor's tick on the core queue, at
/// most every half of WatchdogSec= (a hung core queue stops the pings and systemd restarts the
/// daemon); RELOADING=1 with MONOTONIC_USEC= then READY=1 around a reload; STOPPING=1 at shutdown.
public final class SystemdNotifier: ServiceNotifier {
    /// Half of WatchdogSec=, or nil when the unit has no watchdog (or pings are switched off).
    public let watchdogInterval: Duration?
    /// When the last WATCHDOG=1 went out (the core queue calls `watchdogTick`; any thread may read).
    private let lastPing = Mutex<ContinuousClock.Instant?>(nil)

    /// `pingWatchdog` false ([systemd] watchdog = false) never pings, even with WatchdogSec= set.
    public init(pingWatchdog: Bool = true) {
        watchdogInterval = pingWatchdog ? SDDaemon.watchdogTimeout().map { $0 / 2 } : nil
    }

    /// Whether this process was started by a service manager that listens for notifications.
    public static var isAvailable: Bool { SDDaemon.notifySocket != nil }

    public func ready(status: String) {
        SDDaemon.notify(["READY": "1", "STATUS": status])
    }

    public func status(_ text: String) {
        SDDaemon.notify(["STATUS": text])
    }

    public func reloading() {
        SDDaemon.notify(["RELOADING": "1", "MONOTONIC_USEC": "\(SDDaemon.monotonicMicroseconds())"])
    }

    public func stopping() {
        SDDaemon.notify(["STOPPING": "1", "STATUS": "stopping: finishing queued work"])
    }

    public func watchdogTick() {
        guard let watchdogInterval else { return }
        let now = ContinuousClock.now
        let due = lastPing.withLock { last in
            if let last, now - last < watchdogInterval { return false }
            last = now
            return true
        }
        if due { SDDaemon.notify(["WATCHDOG": "1"]) }
    }
}
