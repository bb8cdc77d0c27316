import EDMMProtocol
import Synchronization

/// Every registered enclave by handle. Lock-protected: sessions look handles up from their own
/// queues, enclaves remove themselves from theirs. Handles are never reused while the daemon runs.
final class EnclaveRegistry: Sendable {
    private struct State {
        var enclaves: [EnclaveHandle: EnclaveContext] = [:]
        var lastHandle: EnclaveHandle = 0
    }

    private let state = Mutex(State(lastHandle: EnclaveRegistry.randomStart()))

    /// Handles count up from a random point in [2^16, 2^47), a multiple of 2^16: a daemon that
    /// restarts without the FD store (which would restore its handles) must not hand an old
    /// handle to another enclave, or a reconnecting client would ATTACH a stranger's enclave.
    private static func randomStart() -> EnclaveHandle {
        UInt64.random(in: 1..<(1 << 31)) << 16
    }

    /// A handle no enclave of this daemon ever had (nor, barring a 2^-31 chance, one of an earlier daemon).
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
