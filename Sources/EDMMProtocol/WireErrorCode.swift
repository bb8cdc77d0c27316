/// The status of a response operation: 0 is success, anything else names the error.
public enum WireErrorCode: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// Framing is wrong: bad magic, a length that does not match the packet, a truncated header,
    /// operation bodies that overrun the message.
    case malformedMessage = 1
    case unsupportedVersion = 2
    case unknownVerb = 3
    /// One operation's body does not decode (truncated, trailing bytes, bad string, list too long).
    case malformedOperation = 4
    case messageTooLarge = 5
    case tooManyOperations = 6
    case tooManyInFlight = 7
    case tooManyEnclaves = 8
    /// The request id is already in flight on this connection.
    case duplicateRequestID = 9
    /// The first message of a connection must be HELLO.
    case helloRequired = 10
    case unknownEnclave = 11
    /// The enclave belongs to another uid, or this connection has not registered/attached it.
    case notOwner = 12
    /// An admin verb from a peer that is neither root nor in the admin group.
    case notAdmin = 13
    /// Offset or length is not a multiple of 4096, or the length is zero.
    case notAligned = 14
    /// The range wraps, or lies outside ELRANGE or the managed range.
    case outOfRange = 15
    case invalidArgument = 16
    /// A page is not in a state that allows the operation (e.g. TRIM_ACCEPTED of an untrimmed page).
    case invalidPageState = 17
    case quotaExceeded = 18
    /// The kernel (or simulated) driver failed an ioctl; carries errno, count and result.
    case kernelError = 19
    /// The descriptor is missing, not an enclave, or of the wrong machine.
    case badDescriptor = 20
    /// The enclave is being unregistered, or its device failed.
    case enclaveUnavailable = 21
    case shuttingDown = 22
    case internalError = 23
    /// Flags this verb does not allow, or unknown flag bits.
    case invalidFlags = 24
    /// The daemon already serves its maximum of connections; it answers once and closes.
    case tooManyConnections = 25

    public var description: String {
        switch self {
        case .malformedMessage: "malformed-message"
        case .unsupportedVersion: "unsupported-version"
        case .unknownVerb: "unknown-verb"
        case .malformedOperation: "malformed-operation"
        case .messageTooLarge: "message-too-large"
        case .tooManyOperations: "too-many-operations"
        case .tooManyInFlight: "too-many-in-flight"
        case .tooManyEnclaves: "too-many-enclaves"
        case .duplicateRequestID: "duplicate-request-id"
        case .helloRequired: "hello-required"
        case .unknownEnclave: "unknown-enclave"
        case .notOwner: "not-owner"
        case .notAdmin: "not-admin"
        case .notAligned: "not-aligned"
        case .outOfRange: "out-of-range"
        case .invalidArgument: "invalid-argument"
        case .invalidPageState: "invalid-page-state"
        case .quotaExceeded: "quota-exceeded"
        case .kernelError: "kernel-error"
        case .badDescriptor: "bad-descriptor"
        case .enclaveUnavailable: "enclave-unavailable"
        case .shuttingDown: "shutting-down"
        case .internalError: "internal-error"
        case .invalidFlags: "invalid-flags"
        case .tooManyConnections: "too-many-connections"
        }
    }
}
