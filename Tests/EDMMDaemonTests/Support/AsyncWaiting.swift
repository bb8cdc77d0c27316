/// Waits until `condition` holds, checking every few milliseconds, for at most `timeout`; the
/// async twin of `eventually` for async tests, which must not block one of the few threads of the
/// concurrency pool that the code under test (a reconnecting host) needs. Returns whether it held.
func waitUntil(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return try await condition()
}
