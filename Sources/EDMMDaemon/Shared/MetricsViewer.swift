/// Who an exposition is rendered for. The METRICS verb keeps the boundary ENCLAVES keeps: a peer
/// that is neither root nor in the admin group sees only the series of the enclaves it may see
/// (its own uid's host enclaves, or its pod's in Kubernetes mode) and the machine-wide ones,
/// which STATUS gives everyone. /metrics renders for `.everyone`: it answers on loopback without
/// authentication (docs/observability.md).
public enum MetricsViewer: Sendable, Equatable {
    case everyone
    case peer(PeerCredentials)

    /// Whether the series of an enclave registered by `owner` are shown.
    public func sees(_ owner: PeerCredentials) -> Bool {
        switch self {
        case .everyone: true
        case .peer(let viewer): viewer.canView(owner: owner, adminGroup: nil)
        }
    }
}
