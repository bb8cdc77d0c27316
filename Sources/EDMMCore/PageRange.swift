/// Enclave pages are 4 KiB everywhere in SGX; offsets are relative to the enclave base
/// (SECS.BASEADDR), exactly like the kernel uapi.
public enum Page {
    public static let size: UInt64 = 4096
    public static let shift: UInt64 = 12

    /// `pages` in bytes, saturating at 2^64-1: page counts can come from clients (a kernel enclave's
    /// adopted pages) or from shared memory, and a view must not trap on them.
    public static func bytes(_ pages: UInt64) -> UInt64 {
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: size)
        return overflow ? .max : bytes
    }
}

/// A non-empty run of enclave pages, `[first, first + count)`, in page indices relative to the
/// enclave base.
public struct PageRange: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var first: UInt64
    public var count: UInt64

    public init(first: UInt64, count: UInt64) {
        precondition(count > 0 && first <= UInt64.max - count, "PageRange must be non-empty and not overflow")
        self.first = first
        self.count = count
    }

    public init(first: UInt64, end: UInt64) {
        self.init(first: first, count: end - first)
    }

    /// Validates a byte range the way the driver's `sgx_validate_offset_length()` does for
    /// alignment and overflow; returns nil for unaligned, empty or wrapping ranges.
    public init?(byteOffset: UInt64, byteLength: UInt64) {
        guard byteOffset % Page.size == 0, byteLength > 0, byteLength % Page.size == 0,
            byteOffset <= UInt64.max - byteLength
        else { return nil }
        self.init(first: byteOffset >> Page.shift, count: byteLength >> Page.shift)
    }

    /// One past the last page.
    public var end: UInt64 { first + count }
    public var last: UInt64 { first + count - 1 }
    public var byteOffset: UInt64 { first << Page.shift }
    public var byteLength: UInt64 { count << Page.shift }

    public func contains(_ page: UInt64) -> Bool { page >= first && page < end }
    public func contains(_ other: PageRange) -> Bool { other.first >= first && other.end <= end }
    public func overlaps(_ other: PageRange) -> Bool { first < other.end && other.first < end }

    public func intersection(_ other: PageRange) -> PageRange? {
        let lo = max(first, other.first)
        let hi = min(end, other.end)
        return lo < hi ? PageRange(first: lo, end: hi) : nil
    }

    public static func < (lhs: PageRange, rhs: PageRange) -> Bool {
        (lhs.first, lhs.count) < (rhs.first, rhs.count)
    }

    public var description: String { "[\(first)+\(count))" }
}

/// EPCM / SECINFO read-write-execute bits (SECINFO.FLAGS bits 0..2).
public struct PagePermissions: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let read = PagePermissions(rawValue: 0x1)
    public static let write = PagePermissions(rawValue: 0x2)
    public static let execute = PagePermissions(rawValue: 0x4)
    public static let none: PagePermissions = []
    public static let rw: PagePermissions = [.read, .write]
    public static let rx: PagePermissions = [.read, .execute]
    public static let rwx: PagePermissions = [.read, .write, .execute]

    /// `rwx`-style, `-` for a missing bit (as in `ls -l` and the replay `state` output).
    public var description: String {
        (contains(.read) ? "r" : "-") + (contains(.write) ? "w" : "-") + (contains(.execute) ? "x" : "-")
    }

    /// Parses "", "r", "rw", "rx", "rwx" (any order of the letters, no repeats).
    public init?(letters: String) {
        var value: PagePermissions = []
        for ch in letters {
            let bit: PagePermissions
            switch ch {
            case "r": bit = .read
            case "w": bit = .write
            case "x": bit = .execute
            default: return nil
            }
            if value.contains(bit) { return nil }
            value.insert(bit)
        }
        self = value
    }
}
