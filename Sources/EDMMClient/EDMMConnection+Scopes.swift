import EDMMProtocol

/// The Kubernetes scope verbs (docs/kubernetes.md): SET_SCOPE and DROP_SCOPE (admin), SCOPES.
extension EDMMConnection {
    /// SET_SCOPE (admin): registers a pod or container scope with its names and own quota.
    public func setScope(_ request: SetScopeRequest) async throws(EDMMClientError) -> SetScopeReply {
        guard case .setScope(let r) = try await perform(.setScope(request)) else { throw scopeMismatch(.setScope) }
        return r
    }

    /// DROP_SCOPE (admin): forgets a container's scope, or a pod's with its containers'.
    public func dropScope(_ request: DropScopeRequest) async throws(EDMMClientError) -> DropScopeReply {
        guard case .dropScope(let r) = try await perform(.dropScope(request)) else { throw scopeMismatch(.dropScope) }
        return r
    }

    /// Every scope this connection may see, page by page.
    public func allScopes() async throws(EDMMClientError) -> [ScopeSummary] {
        var all: [ScopeSummary] = []
        while true {
            guard case .scopes(let page) = try await perform(.scopes(ScopeListRequest(offset: UInt32(clamping: all.count)))) else {
                throw scopeMismatch(.scopes)
            }
            all += page.scopes
            guard !page.scopes.isEmpty, all.count < Int(page.total) else { return all }
        }
    }

    private func scopeMismatch(_ verb: Verb) -> EDMMClientError { .protocolViolation("\(verb) answered with another verb's reply") }
}
