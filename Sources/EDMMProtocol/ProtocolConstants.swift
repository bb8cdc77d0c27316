/// Version 1 of the edmmd control protocol. See docs/protocol.md for the normative description.
public enum ProtocolVersion {
    public static let current: UInt16 = 1
    public static let supported: ClosedRange<UInt16> = 1...1
}

/// "EDMM" in byte order: the first four bytes of every message.
public let messageMagic: UInt32 = 0x4D4D_4445

/// The fixed sizes of the framing.
public enum WireSize {
    public static let messageHeader = 16
    public static let operationHeader = 16
}

public enum MessageKind: UInt16, Sendable {
    case request = 1
    case response = 2
    case push = 3
}

/// Operation verbs of requests and responses. A response carries the verb of its request.
public enum Verb: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case hello = 1
    case register = 2
    case attach = 3
    case unregister = 4
    case allocate = 5
    case free = 6
    case trim = 7
    case trimAccepted = 8
    case restrict = 9
    case relax = 10
    case makeTCS = 11
    case sync = 12
    case status = 13
    case enclaves = 14
    case stats = 15
    case reclaim = 16
    case reload = 17
    case metrics = 18
    case setScope = 19
    case dropScope = 20
    case scopes = 21

    public var description: String {
        switch self {
        case .hello: "HELLO"
        case .register: "REGISTER"
        case .attach: "ATTACH"
        case .unregister: "UNREGISTER"
        case .allocate: "ALLOCATE"
        case .free: "FREE"
        case .trim: "TRIM"
        case .trimAccepted: "TRIM_ACCEPTED"
        case .restrict: "RESTRICT"
        case .relax: "RELAX"
        case .makeTCS: "MAKE_TCS"
        case .sync: "SYNC"
        case .status: "STATUS"
        case .enclaves: "ENCLAVES"
        case .stats: "STATS"
        case .reclaim: "RECLAIM"
        case .reload: "RELOAD"
        case .metrics: "METRICS"
        case .setScope: "SET_SCOPE"
        case .dropScope: "DROP_SCOPE"
        case .scopes: "SCOPES"
        }
    }

    /// Verbs that only root or the configured admin group may use.
    public var isAdmin: Bool { [.reclaim, .reload, .setScope, .dropScope].contains(self) }
}

/// Verbs of daemon-initiated pushes.
public enum PushVerb: UInt16, Sendable, CustomStringConvertible {
    case reclaimNotice = 100
    case shutdownNotice = 101

    public var description: String {
        switch self {
        case .reclaimNotice: "RECLAIM_NOTICE"
        case .shutdownNotice: "SHUTDOWN_NOTICE"
        }
    }
}

/// Bits of the flags word of a request operation.
public struct RequestFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Fire-and-forget: no reply on success (errors are still reported). Allowed on FREE and RELAX.
    public static let noReply = RequestFlags(rawValue: 0x1)
    /// HELLO only: the message carries the client's simulated EPC (its machine memfd) as
    /// descriptor 0, for a restarted daemon to adopt (docs/protocol.md, HELLO).
    public static let machine = RequestFlags(rawValue: 0x2)
    /// REGISTER only, for a client that sees only the host side of its enclave (an unmodified
    /// runtime through libedmm-interpose; docs/protocol.md, "Clients that see only the host side"):
    /// TRIM, RESTRICT and MAKE_TCS of pages the ledger holds as holes first record them as committed.
    public static let implicitCommit = RequestFlags(rawValue: 0x4)
    /// REGISTER only: TRIM, TRIM_ACCEPTED, RESTRICT and MAKE_TCS are answered with what the
    /// kernel's ioctl returned, also where the ledger would have refused them.
    public static let kernelErrors = RequestFlags(rawValue: 0x8)
    /// REGISTER only: ALLOCATE never grants reused pool pages; FREE reclaims instead of pooling.
    public static let freshOnly = RequestFlags(rawValue: 0x10)
    /// The flags REGISTER keeps for the enclave's life.
    public static let registration: RequestFlags = [.implicitCommit, .kernelErrors, .freshOnly]
    public static let known: RequestFlags = [.noReply, .machine, .implicitCommit, .kernelErrors, .freshOnly]
}

/// Every limit of the protocol. The daemon announces its values in the HELLO reply; exceeding
/// one is answered with a precise error, never a crash or a silent drop.
public struct ProtocolLimits: Sendable, Equatable {
    /// Largest message, in bytes, either direction.
    public var maxMessageBytes: Int = 65_536
    /// Operations in one message.
    public var maxOperationsPerMessage: Int = 256
    /// Requests of one connection accepted and not yet answered.
    public var maxInFlightRequests: Int = 4_096
    /// Enclaves one connection may register or attach.
    public var maxEnclavesPerConnection: Int = 64
    /// Descriptors attached to one message (one per REGISTER).
    public var maxDescriptorsPerMessage: Int = 8
    /// Ranges in one list field (preheat, adopted, reused/fresh, reclaim).
    public var maxRangesPerList: Int = 1_024
    /// Bytes of an enclave label.
    public var maxLabelBytes: Int = 64
    /// Bytes of any other string (messages, names, metric chunks).
    public var maxStringBytes: Int = 60_000

    public init() {}

    public static let `default` = ProtocolLimits()
}
