/// The work a queued request asks for; each kind becomes one SGX2 ioctl.
public enum QueuedOperation: Hashable, Sendable, CustomStringConvertible {
    /// `SGX_IOC_ENCLAVE_MODIFY_TYPES` with page type TRIM (from TRIM or a RECLAIM).
    case trim
    /// `SGX_IOC_ENCLAVE_REMOVE_PAGES` (from TRIM_ACCEPTED).
    case remove
    /// `SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS` to these permissions.
    case restrict(PagePermissions)
    /// `SGX_IOC_ENCLAVE_MODIFY_TYPES` with page type TCS.
    case makeTCS

    public var description: String {
        switch self {
        case .trim: "EMODT(TRIM)"
        case .remove: "REMOVE_PAGES"
        case .restrict(let permissions): "EMODPR(\(permissions))"
        case .makeTCS: "EMODT(TCS)"
        }
    }
}

/// One client request waiting in an enclave's queue for the next flush.
public struct QueuedRequest: Hashable, Sendable, CustomStringConvertible {
    public var id: RequestID
    public var operation: QueuedOperation
    public var range: PageRange

    public init(id: RequestID, operation: QueuedOperation, range: PageRange) {
        self.id = id
        self.operation = operation
        self.range = range
    }

    public var description: String { "\(id): \(operation) \(range)" }
}
