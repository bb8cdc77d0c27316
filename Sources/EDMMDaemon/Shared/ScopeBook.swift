import EDMMCore
import EDMMKubernetes
import EDMMProtocol

/// A scope an admin registered with SET_SCOPE: a container of a pod, or the pod itself, its
/// names (for ENCLAVES and the metrics) and its own quota.
struct ScopeRegistration: Equatable, Sendable {
    var namespace: String
    var pod: String
    var container: String
    /// nil: none of its own (a container falls back to its pod's, then to the default).
    var quotaPages: UInt64?
}

/// The Kubernetes half of the quota book: the registered scopes and the pages charged to each
/// container and each pod. A value guarded by `QuotaBook`'s lock.
struct ScopeBook {
    var registrations: [ContainerScope: ScopeRegistration] = [:]
    /// Pages charged per container scope (a peer's scope as HELLO resolved it) and per pod UID.
    private(set) var containerPages: [ContainerScope: UInt64] = [:]
    private(set) var podPages: [String: UInt64] = [:]
    /// The quota of a container without one of its own or its pod's; nil: unlimited.
    var defaultContainerPages: UInt64? = 0

    /// Moves an enclave's charge in `scope` from `old` to `new` pages.
    mutating func recharge(_ scope: ContainerScope, from old: UInt64, to new: UInt64) {
        containerPages[scope, default: 0] = containerPages[scope, default: 0] - old + new
        podPages[scope.podUID, default: 0] = podPages[scope.podUID, default: 0] - old + new
        if containerPages[scope] == 0 { containerPages[scope] = nil }
        if podPages[scope.podUID] == 0 { podPages[scope.podUID] = nil }
    }

    /// The quota that binds enclaves of `scope` and what it is charged: the container's own, else
    /// its pod's (shared by the pod's containers), else the default for containers.
    func charge(_ scope: ContainerScope) -> ScopeCharge {
        if scope.containerID != nil, let own = registrations[scope]?.quotaPages {
            return ScopeCharge(scope: .container, usedPages: containerPages[scope] ?? 0, limitPages: own)
        }
        if let pod = registrations[scope.pod]?.quotaPages {
            return ScopeCharge(scope: .pod, usedPages: podPages[scope.podUID] ?? 0, limitPages: pod)
        }
        return ScopeCharge(scope: .container, usedPages: containerPages[scope] ?? 0, limitPages: defaultContainerPages)
    }

    /// The pages charged to a scope: a container's, or a pod's (all its containers).
    func usedPages(_ scope: ContainerScope) -> UInt64 {
        scope.containerID == nil ? podPages[scope.podUID] ?? 0 : containerPages[scope] ?? 0
    }

    /// Every scope that is registered or charged, in order.
    var known: [ContainerScope] {
        Set(registrations.keys).union(containerPages.keys).union(podPages.keys.map { ContainerScope(podUID: $0) }).sorted()
    }

    /// Forgets a container's registration, or a pod's with all its containers'; the scopes forgotten.
    mutating func drop(_ scope: ContainerScope) -> [ContainerScope] {
        let dropped = registrations.keys.filter { scope.containerID == nil ? $0.podUID == scope.podUID : $0 == scope }
        for key in dropped { registrations[key] = nil }
        return dropped
    }
}
