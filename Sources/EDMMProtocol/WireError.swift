import EDMMCore

/// Which quota refused an allocation.
public enum QuotaScope: UInt8, Sendable, CustomStringConvertible {
    case enclave = 1
    case uid = 2
    case machine = 3
    /// A Kubernetes container's quota (its own, or edmmd's default for containers).
    case container = 4
    /// A Kubernetes pod's quota, shared by its containers without one of their own.
    case pod = 5
    public var description: String {
        switch self {
        case .enclave: "enclave"
        case .uid: "uid"
        case .machine: "machine"
        case .container: "container"
        case .pod: "pod"
        }
    }
}

/// The SGX2 ioctl a kernel error came from.
public enum WireIoctl: UInt8, Sendable, CustomStringConvertible {
    case modifyTypes = 1
    case restrictPermissions = 2
    case removePages = 3
    /// The ioctl that carries out a queued operation.
    public init(_ operation: QueuedOperation) {
        switch operation {
        case .trim, .makeTCS: self = .modifyTypes
        case .restrict: self = .restrictPermissions
        case .remove: self = .removePages
        }
    }

    public var description: String {
        switch self {
        case .modifyTypes: "SGX_IOC_ENCLAVE_MODIFY_TYPES"
        case .restrictPermissions: "SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS"
        case .removePages: "SGX_IOC_ENCLAVE_REMOVE_PAGES"
        }
    }
}

/// An error as a client sees it: a code, typed details where the code has them, and a message
/// meant for humans.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Detail: Equatable, Sendable {
        case none
        /// ALLOCATE/REGISTER refused: the pages asked, the pages in use and the limit, in that scope.
        case quota(scope: QuotaScope, askedPages: UInt64, usedPages: UInt64, limitPages: UInt64)
        /// An ioctl failed. `offset`/`countBytes` are relative to the request's own range:
        /// `countBytes` bytes of it were done before the failing page. `result` is the SGX error
        /// code when the kernel wrote one (never for REMOVE_PAGES, which has no result field).
        case kernel(ioctl: WireIoctl, errno: Int32, countBytes: UInt64, result: UInt64?)
        /// The first page (byte offset) whose state refused the operation, and that state's name.
        case page(offset: UInt64, state: String)
        /// A limit was exceeded: the limit and the value that exceeded it.
        case limit(limit: UInt64, actual: UInt64)
    }

    public var code: WireErrorCode
    public var detail: Detail
    public var message: String

    public init(_ code: WireErrorCode, _ message: String, detail: Detail = .none) {
        self.code = code
        self.detail = detail
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    func encode(_ w: inout WireWriter) {
        switch detail {
        case .none:
            w.u8(0)
        case .quota(let scope, let asked, let used, let limit):
            w.u8(1)
            w.u8(scope.rawValue)
            w.u64(asked)
            w.u64(used)
            w.u64(limit)
        case .kernel(let ioctl, let errno, let count, let result):
            w.u8(2)
            w.u8(ioctl.rawValue)
            w.i32(errno)
            w.u64(count)
            w.bool(result != nil)
            w.u64(result ?? 0)
        case .page(let offset, let state):
            w.u8(3)
            w.u64(offset)
            w.string(state)
        case .limit(let limit, let actual):
            w.u8(4)
            w.u64(limit)
            w.u64(actual)
        }
        w.string(String(message.utf8.prefix(1024)) ?? "")
    }

    static func decode(code: WireErrorCode, _ r: inout WireReader) throws(DecodeError) -> WireError {
        let at = r.position
        let detail: Detail
        switch try r.u8("error.detail") {
        case 0:
            detail = .none
        case 1:
            let scopeAt = r.position
            guard let scope = QuotaScope(rawValue: try r.u8("error.quota.scope")) else {
                throw DecodeError("error.quota.scope: unknown scope", at: scopeAt)
            }
            detail = .quota(
                scope: scope, askedPages: try r.u64("error.quota.asked"), usedPages: try r.u64("error.quota.used"),
                limitPages: try r.u64("error.quota.limit"))
        case 2:
            let ioctlAt = r.position
            guard let ioctl = WireIoctl(rawValue: try r.u8("error.kernel.ioctl")) else {
                throw DecodeError("error.kernel.ioctl: unknown ioctl", at: ioctlAt)
            }
            let errno = try r.i32("error.kernel.errno")
            let count = try r.u64("error.kernel.count")
            let hasResult = try r.bool("error.kernel.hasResult")
            let resultAt = r.position
            let result = try r.u64("error.kernel.result")
            // Without a result the field is padding; a value there would be silently dropped.
            guard hasResult || result == 0 else {
                throw DecodeError("error.kernel.result: \(result) given but hasResult is 0", at: resultAt)
            }
            detail = .kernel(ioctl: ioctl, errno: errno, countBytes: count, result: hasResult ? result : nil)
        case 3:
            detail = .page(offset: try r.u64("error.page.offset"), state: try r.string("error.page.state", maxBytes: 64))
        case 4:
            detail = .limit(limit: try r.u64("error.limit.limit"), actual: try r.u64("error.limit.actual"))
        case let tag:
            throw DecodeError("error.detail: unknown detail kind \(tag)", at: at)
        }
        let message = try r.string("error.message", maxBytes: 1024)
        return WireError(code, message, detail: detail)
    }
}
