import EDMMCore
import EDMMProtocol
import Synchronization

/// The EPC pages charged to each enclave, summed per uid and for the machine: the shared half of
/// admission control. Enclave queues run concurrently, so an allocation decides and records its
/// charge under the book's lock (`admit`), and no two queues can both take the last pages.
/// Every tracked ledger page is charged (`PageCounts.epcPages`, lazy-free pool included).
final class QuotaBook: Sendable {
    private struct State {
        var enclaves: [EnclaveHandle: (uid: UInt32, pages: UInt64)] = [:]
        var uids: [UInt32: UInt64] = [:]
        var machine: UInt64 = 0

        mutating func set(_ handle: EnclaveHandle, uid: UInt32, pages: UInt64) {
            let old = enclaves[handle]?.pages ?? 0
            enclaves[handle] = (uid, pages)
            uids[uid, default: 0] = uids[uid, default: 0] - old + pages
            machine = machine - old + pages
            if uids[uid] == 0 { uids[uid] = nil }
        }

        func usage(_ handle: EnclaveHandle, uid: UInt32) -> QuotaUsage {
            QuotaUsage(enclavePages: enclaves[handle]?.pages ?? 0, uidPages: uids[uid] ?? 0, machinePages: machine)
        }
    }

    private let state = Mutex(State())

    /// Runs `decide` with the current usage under the lock; it returns its result and the enclave's
    /// new charge, which is recorded before the lock is released.
    func admit<T: Sendable, E: Error>(
        _ handle: EnclaveHandle, uid: UInt32, _ decide: (QuotaUsage) throws(E) -> (result: T, pages: UInt64)
    ) throws(E) -> T {
        try state.withLock { (state: inout State) throws(E) -> T in
            let (result, pages) = try decide(state.usage(handle, uid: uid))
            state.set(handle, uid: uid, pages: pages)
            return result
        }
    }

    /// Records an enclave's charge after its ledger changed.
    func charge(_ handle: EnclaveHandle, uid: UInt32, pages: UInt64) {
        state.withLock { $0.set(handle, uid: uid, pages: pages) }
    }

    /// Returns everything the enclave was charged.
    func release(_ handle: EnclaveHandle) {
        state.withLock { state in
            guard let entry = state.enclaves[handle] else { return }
            state.set(handle, uid: entry.uid, pages: 0)
            state.enclaves[handle] = nil
        }
    }

    var machinePages: UInt64 { state.withLock { $0.machine } }

    /// The usage an enclave's next admission would see now (it may change before `admit`).
    func usage(_ handle: EnclaveHandle, uid: UInt32) -> QuotaUsage {
        state.withLock { $0.usage(handle, uid: uid) }
    }
}
