import Glibc

/// Starts a detached OS thread running `body`. The connection's blocking receive loop runs on
/// one, so that a reply is read the moment it arrives, independently of the Swift concurrency
/// pool (which an enclave host may be keeping busy with EACCEPTs).
func startDetachedThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
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
    pthread_detach(thread)
    return true
}
