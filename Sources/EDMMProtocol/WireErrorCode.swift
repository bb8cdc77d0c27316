/// The status of a response operation: 0 is success, anything else names the error. A code this
/// build does not know (a newer daemon's, docs/protocol.md "Versioning") is kept as it came and
/// described as `unknown(<code>)`: new error codes do not make a new protocol version.
public struct WireErrorCode: RawRepresentable, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Framing is wrong: bad magic, a length that does not match the packet, a truncated header,
    /// operation bodies that overrun the message.
    public static let malformedMessage = WireErrorCode(rawValue: 1)
    public static let unsupportedVersion = WireErrorCode(rawValue: 2)
    public static let unknownVerb = WireErrorCode(rawValue: 3)
    /// One operation's body does not decode (truncated, trailing bytes, bad string, list too long).
    public static let malformedOperation = WireErrorCode(rawValue: 4)
    public static let messageTooLarge = WireErrorCode(rawValue: 5)
    public static let tooManyOperations = WireErrorCode(rawValue: 6)
    public static let tooManyInFlight = WireErrorCode(rawValue: 7)
    public static let tooManyEnclaves = WireErrorCode(rawValue: 8)
    /// The request id is already in flight on this connection.
    public static let duplicateRequestID = WireErrorCode(rawValue: 9)
    /// The first message of a connection must be HELLO.
    public static let helloRequired = WireErrorCode(rawValue: 10)
    public static let unknownEnclave = WireErrorCode(rawValue: 11)
    /// The enclave belongs to another uid, or this connection has not registered/attached it.
    public static let notOwner = WireErrorCode(rawValue: 12)
    /// An admin verb from a peer that is neither root nor in the admin group.
    public static let notAdmin = WireErrorCode(rawValue: 13)
    /// Offset or length is not a multiple of 4096, or the length is zero.
    public static let notAligned = WireErrorCode(rawValue: 14)
    /// The range wraps, or lies outside ELRANGE or the managed range.
    public static let outOfRange = WireErrorCode(rawValue: 15)
    public static let invalidArgument = WireErrorCode(rawValue: 16)
    /// A page is not in a state that allows the operation (e.g. TRIM_ACCEPTED of an untrimmed page).
    public static let invalidPageState = WireErrorCode(rawValue: 17)
    public static let quotaExceeded = WireErrorCode(rawValue: 18)
    /// The kernel (or simulated) driver failed an ioctl; carries errno, count and result.
    public static let kernelError = WireErrorCode(rawValue: 19)
    /// The descriptor is missing, not an enclave, or of the wrong machine.
    public static let badDescriptor = WireErrorCode(rawValue: 20)
    /// The enclave is being unregistered, or its device failed.
    public static let enclaveUnavailable = WireErrorCode(rawValue: 21)
    public static let shuttingDown = WireErrorCode(rawValue: 22)
    public static let internalError = WireErrorCode(rawValue: 23)
    /// Flags this verb does not allow, or unknown flag bits.
    public static let invalidFlags = WireErrorCode(rawValue: 24)
    /// The daemon already serves its maximum of connections; it answers once and closes.
    public static let tooManyConnections = WireErrorCode(rawValue: 25)

    /// Every code this build knows, in code order.
    public static let allCases: [WireErrorCode] = [
        .malformedMessage,
        .unsupportedVersion,
        .unknownVerb,
        .malformedOperation,
        .messageTooLarge,
        .tooManyOperations,
        .tooManyInFlight,
        .tooManyEnclaves,
        .duplicateRequestID,
        .helloRequired,
        .unknownEnclave,
        .notOwner,
        .notAdmin,
        .notAligned,
        .outOfRange,
        .invalidArgument,
        .invalidPageState,
        .quotaExceeded,
        .kernelError,
        .badDescriptor,
        .enclaveUnavailable,
        .shuttingDown,
        .internalError,
        .invalidFlags,
        .tooManyConnections,
    ]

    /// Whether this build knows the code.
    public var isKnown: Bool { Self.names[rawValue] != nil }

    private static let names: [UInt16: String] = [
        malformedMessage.rawValue: "malformed-message",
        unsupportedVersion.rawValue: "unsupported-version",
        unknownVerb.rawValue: "unknown-verb",
        malformedOperation.rawValue: "malformed-operation",
        messageTooLarge.rawValue: "message-too-large",
        tooManyOperations.rawValue: "too-many-operations",
        tooManyInFlight.rawValue: "too-many-in-flight",
        tooManyEnclaves.rawValue: "too-many-enclaves",
        duplicateRequestID.rawValue: "duplicate-request-id",
        helloRequired.rawValue: "hello-required",
        unknownEnclave.rawValue: "unknown-enclave",
        notOwner.rawValue: "not-owner",
        notAdmin.rawValue: "not-admin",
        notAligned.rawValue: "not-aligned",
        outOfRange.rawValue: "out-of-range",
        invalidArgument.rawValue: "invalid-argument",
        invalidPageState.rawValue: "invalid-page-state",
        quotaExceeded.rawValue: "quota-exceeded",
        kernelError.rawValue: "kernel-error",
        badDescriptor.rawValue: "bad-descriptor",
        enclaveUnavailable.rawValue: "enclave-unavailable",
        shuttingDown.rawValue: "shutting-down",
        internalError.rawValue: "internal-error",
        invalidFlags.rawValue: "invalid-flags",
        tooManyConnections.rawValue: "too-many-connections",
    ]

    public var description: String { Self.names[rawValue] ?? "unknown(\(rawValue))" }
}
