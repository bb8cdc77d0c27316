import EDMMProtocol
import Synchronization

/// Every registered enclave by handle. Lock-protected: sessions look handles up from their own
/// queues, enclaves remove themselves from theirs. Handles are never reused while the daemon runs.
final class EnclaveRegistry: Sendable {
    private struct State {
        var enclaves: [EnclaveHandle: EnclaveContext] = [:]
        var lastHandle: EnclaveHandle = 0
    }

    private let state = Mutex(State())

    /// A handle no enclave of this daemon ever had.
    func newHandle() -> EnclaveHandle {
        state.withLock { state in
            state.lastHandle += 1
            return state.lastHandle
        }
    }

    /// Handles up to `handle` were given out by an earlier run (FD store): never hand them out again.
    func reserveHandles(through handle: EnclaveHandle) {
        state.withLock { $0.lastHandle = max($0.lastHandle, handle) }
    }

    func insert(_ enclave: EnclaveContext) {
        state.withLock { $0.enclaves[enclave.handle] = enclave }
    }

    func remove(_ handle: EnclaveHandle) {
        state.withLock { _ = $0.enclaves.removeValue(forKey: handle) }
    }

    func lookup(_ handle: EnclaveHandle) -> EnclaveContext? {
        state.withLock { $0.enclaves[handle] }
    }

    /// Every enclave, by handle.
    var all: [EnclaveContext] {
        state.withLock { $0.enclaves.values.sorted { $0.handle < $1.handle } }
    }

    var count: Int { state.withLock { $0.enclaves.count } }
}
