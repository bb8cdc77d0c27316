/// Why edmmd reclaims pool pages.
public enum ReclaimReason: UInt8, Sendable, CustomStringConvertible {
    /// The enclave's pool passed its threshold (a percentage of its committed pages).
    case poolThreshold = 1
    /// The machine's EPC passed the high watermark.
    case epcPressure = 2
    /// An administrator asked (`edmmctl reclaim`).
    case admin = 3
    public var description: String {
        switch self {
        case .poolThreshold: "pool-threshold"
        case .epcPressure: "epc-pressure"
        case .admin: "admin"
        }
    }
}

/// RECLAIM notice: edmmd took these pool pages back and already ran EMODT(TRIM) on them. The
/// client EACCEPTs each page with TRIM|MODIFIED and then sends TRIM_ACCEPTED for the ranges.
public struct ReclaimNotice: Equatable, Sendable {
    public var enclave: EnclaveHandle
    public var reason: ReclaimReason
    public var ranges: [WireRange]
    public init(enclave: EnclaveHandle, reason: ReclaimReason, ranges: [WireRange]) {
        self.enclave = enclave
        self.reason = reason
        self.ranges = ranges
    }
}

/// SHUTDOWN notice: the daemon is stopping. When `restarting` is true (a systemd restart with
/// the FD store) clients reconnect and ATTACH their enclaves again: registrations survive.
public struct ShutdownNotice: Equatable, Sendable {
    public var restarting: Bool
    public var message: String
    public init(restarting: Bool, message: String) {
        self.restarting = restarting
        self.message = message
    }
}

public enum Push: Equatable, Sendable {
    case reclaim(ReclaimNotice)
    case shutdown(ShutdownNotice)

    public var verb: PushVerb {
        switch self {
        case .reclaim: .reclaimNotice
        case .shutdown: .shutdownNotice
        }
    }

    func encode(_ w: inout WireWriter) {
        switch self {
        case .reclaim(let n):
            w.u64(n.enclave)
            w.u8(n.reason.rawValue)
            w.list(n.ranges) { w, range in range.encode(&w) }
        case .shutdown(let n):
            w.bool(n.restarting)
            w.string(n.message)
        }
    }

    static func decode(verb: PushVerb, _ r: inout WireReader, limits: ProtocolLimits) throws(DecodeError) -> Push {
        let push: Push
        switch verb {
        case .reclaimNotice:
            let enclave = try r.u64("reclaim.enclave")
            let at = r.position
            guard let reason = ReclaimReason(rawValue: try r.u8("reclaim.reason")) else {
                throw DecodeError("reclaim.reason: unknown reason", at: at)
            }
            let ranges = try r.list("reclaim.ranges", maxCount: limits.maxRangesPerList, minElementBytes: WireRange.wireSize) {
                (r: inout WireReader) throws(DecodeError) in try WireRange.decode(&r, "reclaim.ranges[]")
            }
            push = .reclaim(ReclaimNotice(enclave: enclave, reason: reason, ranges: ranges))
        case .shutdownNotice:
            push = .shutdown(
                ShutdownNotice(restarting: try r.bool("shutdown.restarting"), message: try r.string("shutdown.message", maxBytes: 1024)))
        }
        try r.expectEnd("\(verb) body")
        return push
    }
}
