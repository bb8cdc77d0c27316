import Glibc

/// OS threads outside Dispatch and the Swift concurrency pool: for blocking loops that must not
/// occupy a pool thread (a connection's receive loop, a process reading its standard input), and
/// for a genuinely concurrent caller in a test of the simulator (a second ioctl between pages).
public enum OSThread {
    /// Starts `body` on a new detached thread; false if the thread could not be created.
    @discardableResult
    public static func startDetached(_ body: @escaping @Sendable () -> Void) -> Bool {
        guard let thread = spawn(body) else { return false }
        pthread_detach(thread)
        return true
    }

    /// Runs `body` on a new thread and waits for it; false if the thread could not be created.
    @discardableResult
    public static func runAndJoin(_ body: @escaping () -> Void) -> Bool {
        guard let thread = spawn(body) else { return false }
        pthread_join(thread, nil)
        return true
    }

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private static func spawn(_ body: @escaping () -> Void) -> pthread_t? {
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
            return nil
        }
        return thread
    }
}
