import EDMMCore

/// One of the three SGX2 ioctls, with its operation-specific argument; the range is given
/// separately. Values are passed to the device as they are: the kernel validates them.
public enum EnclaveIoctl: Hashable, Sendable, CustomStringConvertible {
    /// SGX_IOC_ENCLAVE_MODIFY_TYPES (EMODT): REG->TCS, REG->TRIM or TCS->TRIM.
    case modifyTypes(SGXPageType)
    /// SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS (EMODPR).
    case restrictPermissions(PagePermissions)
    /// SGX_IOC_ENCLAVE_REMOVE_PAGES (EREMOVE of accepted TRIM pages).
    case removePages

    /// The ioctl that carries out a queued operation.
    public init(_ operation: QueuedOperation) {
        switch operation {
        case .trim: self = .modifyTypes(.trim)
        case .makeTCS: self = .modifyTypes(.tcs)
        case .restrict(let permissions): self = .restrictPermissions(permissions)
        case .remove: self = .removePages
        }
    }

    public var description: String {
        switch self {
        case .modifyTypes(let type): "MODIFY_TYPES(\(type))"
        case .restrictPermissions(let permissions): "RESTRICT_PERMISSIONS(\(permissions))"
        case .removePages: "REMOVE_PAGES"
        }
    }
}

/// What one ioctl call left behind: its errno (0 on success) and the struct's `count` and
/// `result` afterwards (`result` is nil for REMOVE_PAGES, which has none).
public struct IoctlCallResult: Hashable, Sendable {
    public var errno: Int32
    public var count: UInt64
    public var result: UInt64?

    public init(errno: Int32, count: UInt64, result: UInt64?) {
        self.errno = errno
        self.count = count
        self.result = result
    }
}

extension EnclaveDevice {
    /// Issues `ioctl` once over `[offset, offset + length)` with `count` and `result` zero on
    /// input, as the kernel requires.
    public func perform(_ ioctl: EnclaveIoctl, offset: UInt64, length: UInt64) -> IoctlCallResult {
        switch ioctl {
        case .modifyTypes(let type):
            var params = ModifyTypesParams(offset: offset, length: length, pageType: UInt64(type.rawValue))
            let errno = modifyTypes(&params)
            return IoctlCallResult(errno: errno, count: params.count, result: params.result)
        case .restrictPermissions(let permissions):
            var params = RestrictPermissionsParams(
                offset: offset, length: length, permissions: UInt64(permissions.rawValue))
            let errno = restrictPermissions(&params)
            return IoctlCallResult(errno: errno, count: params.count, result: params.result)
        case .removePages:
            var params = RemovePagesParams(offset: offset, length: length)
            let errno = removePages(&params)
            return IoctlCallResult(errno: errno, count: params.count, result: nil)
        }
    }
}
