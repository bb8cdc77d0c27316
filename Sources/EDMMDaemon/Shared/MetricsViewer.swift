/// Who an exposition is rendered for. The METRICS verb keeps the boundary ENCLAVES keeps: a peer
/// that is neither root nor in the admin group sees only the series of its own uid's enclaves
/// (and the machine-wide ones, which STATUS gives everyone). /metrics renders for `.everyone`:
/// it answers on loopback without authentication (docs/observability.md).
public enum MetricsViewer: Sendable, Equatable {
    case everyone
    case uid(UInt32)

    /// Whether the series of something owned by `uid` are shown.
    public func sees(uid owner: UInt32) -> Bool {
        switch self {
        case .everyone: true
        case .uid(let uid): uid == owner
        }
    }
}
