import EDMMCore

/// EPCM page types (`enum sgx_page_type`, EPCM.PT). Linux supports REG, TCS and TRIM for
/// enclave pages; SECS and VA are kernel-internal. CET shadow-stack types are not supported.
public enum SGXPageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case secs = 0
    case tcs = 1
    case reg = 2
    case va = 3
    case trim = 4

    public var description: String {
        switch self {
        case .secs: "SECS"
        case .tcs: "TCS"
        case .reg: "REG"
        case .va: "VA"
        case .trim: "TRIM"
        }
    }
}

/// SECINFO.FLAGS as used by EACCEPT, EACCEPTCOPY, EMODPE and EADD. The kernel masks only know
/// RWX and PAGE_TYPE; PENDING/MODIFIED/PR appear only in enclave-side EACCEPT SECINFOs.
public struct SecInfoFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let r = SecInfoFlags(rawValue: 0x001)
    public static let w = SecInfoFlags(rawValue: 0x002)
    public static let x = SecInfoFlags(rawValue: 0x004)
    public static let pending = SecInfoFlags(rawValue: 0x008)
    public static let modified = SecInfoFlags(rawValue: 0x010)
    public static let pr = SecInfoFlags(rawValue: 0x020)

    public static let permissionMask: UInt64 = 0x7
    public static let pageTypeMask: UInt64 = 0xFF00
    /// Bits the SDM reserves (everything but RWX, PENDING, MODIFIED, PR and PAGE_TYPE).
    public static let reservedMask: UInt64 = ~(0x3F | 0xFF00)

    public static func pageType(_ type: SGXPageType) -> SecInfoFlags {
        SecInfoFlags(rawValue: UInt64(type.rawValue) << 8)
    }

    public init(permissions: PagePermissions) { self.init(rawValue: UInt64(permissions.rawValue)) }

    public var permissions: PagePermissions { PagePermissions(rawValue: UInt8(rawValue & Self.permissionMask)) }
    /// The raw PAGE_TYPE field (bits 15:8); may name no known type.
    public var pageTypeField: UInt8 { UInt8((rawValue & Self.pageTypeMask) >> 8) }
}

/// SGX error codes returned in RAX with ZF=1 (kernel enum where it has them, SDM otherwise).
public enum SGXErrorCode {
    public static let epcPageConflict: UInt64 = 7
    public static let notTracked: UInt64 = 11
    public static let childPresent: UInt64 = 13
    public static let enclaveAct: UInt64 = 14
    public static let pageAttributesMismatch: UInt64 = 19
    public static let pageNotModifiable: UInt64 = 20

    /// The SDM's name of `code` ("SGX_EPC_PAGE_CONFLICT"), nil for a code not listed here.
    public static func name(_ code: UInt64) -> String? {
        switch code {
        case epcPageConflict: "SGX_EPC_PAGE_CONFLICT"
        case notTracked: "SGX_NOT_TRACKED"
        case childPresent: "SGX_CHILD_PRESENT"
        case enclaveAct: "SGX_ENCLAVE_ACT"
        case pageAttributesMismatch: "SGX_PAGE_ATTRIBUTES_MISMATCH"
        case pageNotModifiable: "SGX_PAGE_NOT_MODIFIABLE"
        default: nil
        }
    }
}

/// `struct sgx_enclave_modify_types` (40 bytes in the uapi header).
public struct ModifyTypesParams: Hashable, Sendable {
    public var offset: UInt64
    public var length: UInt64
    public var pageType: UInt64
    public var result: UInt64
    public var count: UInt64
    public init(offset: UInt64, length: UInt64, pageType: UInt64, result: UInt64 = 0, count: UInt64 = 0) {
        self.offset = offset
        self.length = length
        self.pageType = pageType
        self.result = result
        self.count = count
    }
}

/// `struct sgx_enclave_restrict_permissions` (40 bytes in the uapi header).
public struct RestrictPermissionsParams: Hashable, Sendable {
    public var offset: UInt64
    public var length: UInt64
    public var permissions: UInt64
    public var result: UInt64
    public var count: UInt64
    public init(offset: UInt64, length: UInt64, permissions: UInt64, result: UInt64 = 0, count: UInt64 = 0) {
        self.offset = offset
        self.length = length
        self.permissions = permissions
        self.result = result
        self.count = count
    }
}

/// `struct sgx_enclave_remove_pages` (24 bytes in the uapi header). It has no `result`.
public struct RemovePagesParams: Hashable, Sendable {
    public var offset: UInt64
    public var length: UInt64
    public var count: UInt64
    public init(offset: UInt64, length: UInt64, count: UInt64 = 0) {
        self.offset = offset
        self.length = length
        self.count = count
    }
}
