import Glibc

/// Detached OS threads, for blocking loops that must not occupy the Swift concurrency pool: a
/// connection's receive loop (a reply is read the moment it arrives, even while an enclave host
/// keeps the pool busy with EACCEPTs), or a process reading its standard input.
public enum DetachedThread {
    /// Starts `body` on a new thread; false if the thread could not be created.
    @discardableResult
    public static func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                // `raw` is the box passed below, never nil.
                Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            return false
        }
        pthread_detach(thread)
        return true
    }
}
