/// What the daemon tells its service manager, at the moments a manager cares about. edmmd calls
/// these from its own queues; implementations must be cheap and thread-safe. The systemd
/// implementation (`sd_notify`) plugs in here; outside systemd nothing is sent.
public protocol ServiceNotifier: Sendable {
    /// The control socket serves requests (READY=1).
    func ready(status: String)
    /// A one-line status with live figures (STATUS=...), sent by the supervisor about once a second.
    func status(_ text: String)
    /// A configuration reload starts (RELOADING=1); `ready(status:)` follows when it is done.
    func reloading()
    /// Shutdown starts (STOPPING=1).
    func stopping()
    /// Called on every supervisor tick from the daemon's core queue, the queue that would stall if
    /// the daemon hung (WATCHDOG=1; the implementation decides how often to really ping).
    func watchdogTick()
}

/// The notifier outside a service manager: says nothing.
public struct SilentServiceNotifier: ServiceNotifier {
    public init() {}
    public func ready(status: String) {}
    public func status(_ text: String) {}
    public func reloading() {}
    public func stopping() {}
    public func watchdogTick() {}
}
