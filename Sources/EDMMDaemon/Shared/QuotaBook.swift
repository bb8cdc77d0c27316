import EDMMCore
import EDMMKubernetes
import EDMMProtocol
import Synchronization

/// The EPC pages charged to each enclave, summed per uid, per Kubernetes container and pod, and
/// for the machine: the shared half of admission control. Enclave queues run concurrently, so an
/// allocation decides and records its charge under the book's lock (`admit`), and no two queues
/// can both take the last pages. Every tracked ledger page is charged (`PageCounts.epcPages`,
/// lazy-free pool included).
final class QuotaBook: Sendable {
    /// Whom an enclave's pages are charged to: its owner's uid and, in a pod, its scope.
    struct Owner: Equatable, Sendable {
        var uid: UInt32
        var scope: ContainerScope?

        init(_ peer: PeerCredentials) {
            uid = peer.uid
            scope = peer.scope
        }
    }

    struct State {
        var enclaves: [EnclaveHandle: (owner: Owner, pages: UInt64)] = [:]
        var uids: [UInt32: UInt64] = [:]
        var machine: UInt64 = 0
        var scopes = ScopeBook()

        mutating func set(_ handle: EnclaveHandle, owner: Owner, pages: UInt64) {
            let old = enclaves[handle]?.pages ?? 0
            enclaves[handle] = (owner, pages)
            uids[owner.uid, default: 0] = uids[owner.uid, default: 0] - old + pages
            machine = machine - old + pages
            if uids[owner.uid] == 0 { uids[owner.uid] = nil }
            if let scope = owner.scope { scopes.recharge(scope, from: old, to: pages) }
        }

        func usage(_ handle: EnclaveHandle, owner: Owner) -> QuotaUsage {
            QuotaUsage(
                enclavePages: enclaves[handle]?.pages ?? 0, uidPages: uids[owner.uid] ?? 0, machinePages: machine,
                scope: owner.scope.map { scopes.charge($0) })
        }

        /// The enclaves charged to each scope, in one pass: a container's under its scope, and
        /// all of a pod's under the pod's.
        func enclavesByScope() -> [ContainerScope: [EnclaveHandle]] {
            var byScope: [ContainerScope: [EnclaveHandle]] = [:]
            for (handle, entry) in enclaves {
                guard let scope = entry.owner.scope else { continue }
                byScope[scope, default: []].append(handle)
                if scope.containerID != nil { byScope[scope.pod, default: []].append(handle) }
            }
            return byScope.mapValues { $0.sorted() }
        }
    }

    private let state = Mutex(State())

    /// Runs `decide` with the current usage under the lock; it returns its result and the enclave's
    /// new charge, which is recorded before the lock is released.
    func admit<T: Sendable, E: Error>(
        _ handle: EnclaveHandle, owner: Owner, _ decide: (QuotaUsage) throws(E) -> (result: T, pages: UInt64)
    ) throws(E) -> T {
        try state.withLock { (state: inout State) throws(E) -> T in
            let (result, pages) = try decide(state.usage(handle, owner: owner))
            state.set(handle, owner: owner, pages: pages)
            return result
        }
    }

    /// Records an enclave's charge after its ledger changed.
    func charge(_ handle: EnclaveHandle, owner: Owner, pages: UInt64) {
        state.withLock { $0.set(handle, owner: owner, pages: pages) }
    }

    /// Returns everything the enclave was charged.
    func release(_ handle: EnclaveHandle) {
        state.withLock { state in
            guard let entry = state.enclaves[handle] else { return }
            state.set(handle, owner: entry.owner, pages: 0)
            state.enclaves[handle] = nil
        }
    }

    var machinePages: UInt64 { state.withLock { $0.machine } }

    /// The usage an enclave's next admission would see now (it may change before `admit`).
    func usage(_ handle: EnclaveHandle, owner: Owner) -> QuotaUsage {
        state.withLock { $0.usage(handle, owner: owner) }
    }

    /// Runs `body` on the book under its lock (the scope verbs and views).
    func withState<T>(_ body: (inout State) -> T) -> T {
        state.withLock { body(&$0) }
    }
}

extension QuotaBook {
    /// `[kubernetes] default_container_quota` (at start and on RELOAD).
    func setDefaultContainerPages(_ pages: UInt64?) {
        state.withLock { $0.scopes.defaultContainerPages = pages }
    }

    /// Every container scope registered or charged.
    func containerFigures() -> [ContainerFigures] {
        state.withLock { state in
            let enclaves = state.enclavesByScope()
            return state.scopes.known.filter { $0.containerID != nil }.map { scope in
                let own = state.scopes.registrations[scope]
                let pod = state.scopes.registrations[scope.pod]
                return ContainerFigures(
                    scope: scope, namespace: own?.namespace ?? pod?.namespace ?? "", pod: own?.pod ?? pod?.pod ?? "",
                    container: own?.container ?? "", enclaves: enclaves[scope]?.count ?? 0, pages: state.scopes.usedPages(scope),
                    limitPages: state.scopes.charge(scope).limitPages)
            }
        }
    }

    /// The scopes a previous daemon registered (FD store), before any client connects.
    func restoreScopes(_ scopes: [ContainerScope: ScopeRegistration]) {
        state.withLock { $0.scopes.registrations = scopes }
    }
}

/// One Kubernetes container as the metrics show it.
public struct ContainerFigures: Sendable, Equatable {
    public var scope: ContainerScope
    /// Its names from SET_SCOPE (the pod's when it has none of its own); empty when unknown.
    public var namespace: String
    public var pod: String
    public var container: String
    public var enclaves: Int
    public var pages: UInt64
    /// The quota its enclaves are checked against; nil: unlimited.
    public var limitPages: UInt64?
}
