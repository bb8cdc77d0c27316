import EDMMCore
import EDMMKubernetes
import EDMMProtocol

/// SET_SCOPE and DROP_SCOPE (admin: root or the admin group on the host, which is where the NRI
/// hook runs) and SCOPES (each peer sees the scopes it may see enclaves of).
extension SessionState {
    func setScope(_ request: SetScopeRequest) throws(WireError) -> ResponseBody {
        try requireAdmin(.setScope)
        let scope = try Self.scope(podUID: request.podUID, containerID: request.containerID)
        let registration = ScopeRegistration(
            namespace: request.namespace, pod: request.pod, container: request.container,
            quotaPages: request.quotaPages == .max ? nil : request.quotaPages)
        let reply = core.quotas.withState { state in
            state.scopes.registrations[scope] = registration
            core.fdStore?.scopesChanged(state.scopes.registrations)
            return SetScopeReply(
                enclaves: UInt32(clamping: state.enclavesByScope()[scope]?.count ?? 0), usedPages: state.scopes.usedPages(scope))
        }
        logger.info(
            "scope set",
            metadata: [
                "scope": "\(scope)", "pod": "\(request.namespace)/\(request.pod)", "container": "\(request.container)",
                "quota_pages": "\(registration.quotaPages.map { "\($0)" } ?? "none")",
            ])
        return .setScope(reply)
    }

    func dropScope(_ request: DropScopeRequest) throws(WireError) -> ResponseBody {
        try requireAdmin(.dropScope)
        let scope = try Self.scope(podUID: request.podUID, containerID: request.containerID)
        let reply = core.quotas.withState { state in
            let dropped = state.scopes.drop(scope)
            core.fdStore?.scopesChanged(state.scopes.registrations)
            return DropScopeReply(
                scopes: UInt32(clamping: dropped.count), enclaves: UInt32(clamping: state.enclavesByScope()[scope]?.count ?? 0))
        }
        logger.info("scope dropped", metadata: ["scope": "\(scope)", "scopes": "\(reply.scopes)", "enclaves": "\(reply.enclaves)"])
        return .dropScope(reply)
    }

    /// One page of the scopes this peer may see: all for an admin, its own pod's for a peer in a
    /// pod, none for other host peers (their enclaves have no scope).
    func scopes(_ request: ScopeListRequest) throws(WireError) -> ResponseBody {
        let isAdmin = peer.isAdmin(adminGroup: core.settings.adminGroupID)
        let maxEnclaves = limits.protocolLimits.maxRangesPerList
        let viewerPod = peer.scope?.podUID
        let rows = core.quotas.withState { state in
            let enclaves = state.enclavesByScope()
            return state.scopes.known.filter { isAdmin || $0.podUID == viewerPod }.map { scope in
                Self.summary(scope, state, enclaves: Array((enclaves[scope] ?? []).prefix(maxEnclaves)))
            }
        }
        var budget = limits.protocolLimits.maxMessageBytes - WireSize.messageHeader - WireSize.operationHeader - 16
        var page: [ScopeSummary] = []
        for row in rows.dropFirst(Int(request.offset)) {
            guard request.maxCount == 0 || page.count < Int(request.maxCount), row.wireSize <= budget else { break }
            budget -= row.wireSize
            page.append(row)
        }
        return .scopes(ScopeListReply(scopes: page, total: UInt32(clamping: rows.count)))
    }

    private func requireAdmin(_ verb: Verb) throws(WireError) {
        guard peer.isAdmin(adminGroup: core.settings.adminGroupID) else {
            throw WireError(.notAdmin, "\(verb) needs root or the admin group, on the host")
        }
    }

    private static func scope(podUID: String, containerID: String) throws(WireError) -> ContainerScope {
        guard let pod = ContainerScope.canonicalPodUID(podUID) else {
            throw WireError(.invalidArgument, "\"\(podUID)\" is not a pod UID (a UUID, or 32 hex digits for a static pod)")
        }
        if containerID.isEmpty { return ContainerScope(podUID: pod) }
        guard let container = ContainerScope.canonicalContainerID(containerID) else {
            throw WireError(.invalidArgument, "\"\(containerID)\" is not a container ID (64 hex digits)")
        }
        return ContainerScope(podUID: pod, containerID: container)
    }

    private static func summary(_ scope: ContainerScope, _ state: QuotaBook.State, enclaves: [EnclaveHandle]) -> ScopeSummary {
        let own = state.scopes.registrations[scope]
        // A container without names of its own shows its pod's.
        let names = own ?? state.scopes.registrations[scope.pod]
        let effective = scope.containerID == nil ? own?.quotaPages : state.scopes.charge(scope).limitPages
        return ScopeSummary(
            podUID: scope.podUID, containerID: scope.containerID ?? "", namespace: names?.namespace ?? "", pod: names?.pod ?? "",
            container: own?.container ?? "", quotaPages: own?.quotaPages ?? .max, effectiveQuotaPages: effective ?? .max,
            usedPages: state.scopes.usedPages(scope), enclaves: enclaves,
            registered: own != nil)
    }
}
