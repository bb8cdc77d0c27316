import Dispatch

/// A Dispatch source, which libdispatch lets any thread schedule, suspend, resume and cancel
/// (its handlers run on its queue); the Linux overlay does not mark the source protocols
/// Sendable, so this holder says it once.
struct SendableSource<Source>: @unchecked Sendable {
    let source: Source

    init(_ source: Source) { self.source = source }
}

extension SendableSource where Source == any DispatchSourceTimer {
    /// A timer on `queue`, inactive until `activateIdle`.
    static func timer(on queue: DispatchQueue) -> Self { Self(DispatchSource.makeTimerSource(queue: queue)) }

    /// Sets the handler and activates the timer, idle until it is scheduled: active from the
    /// start, since libdispatch traps when an inactive source is released.
    func activateIdle(_ handler: @escaping @Sendable () -> Void) {
        source.setEventHandler(handler: handler)
        source.schedule(deadline: .distantFuture)
        source.activate()
    }
}
