import Glibc

/// Runs work on a new OS thread and waits for it: for a genuinely concurrent caller (EBUSY from
/// a second ioctl while the first is between pages) without involving Dispatch or async.
enum OSThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Returns false if the thread could not be created.
    @discardableResult
    static func runAndJoin(_ body: @escaping () -> Void) -> Bool {
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            return false
        }
        pthread_join(thread, nil)
        return true
    }
}
