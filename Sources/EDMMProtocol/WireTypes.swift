import EDMMCore

/// Identifies a registered enclave on one daemon. Assigned by REGISTER; never 0.
public typealias EnclaveHandle = UInt64

/// A byte range relative to the enclave base, as on the wire. The codec does not judge it;
/// `pageRange(elrangeSize:)` applies the same checks the kernel applies to ioctl ranges.
public struct WireRange: Hashable, Sendable, CustomStringConvertible {
    public var offset: UInt64
    public var length: UInt64

    public init(offset: UInt64, length: UInt64) {
        self.offset = offset
        self.length = length
    }

    public init(_ range: PageRange) {
        self.init(offset: range.byteOffset, length: range.byteLength)
    }

    /// The wire offset that asks the daemon to choose the placement (ALLOCATE only).
    public static let anywhere: UInt64 = .max

    /// Validates alignment, emptiness, wrap-around and bounds against an ELRANGE of `elrangeSize`
    /// bytes, returning the typed error a client will see.
    public func pageRange(elrangeSize: UInt64) -> Result<PageRange, WireError> {
        guard offset % Page.size == 0, length % Page.size == 0, length > 0 else {
            return .failure(
                WireError(
                    .notAligned,
                    "offset \(hex(offset)) length \(hex(length)): both must be non-zero multiples of 4096 (length may not be 0)"))
        }
        guard offset <= UInt64.max - length else {
            return .failure(WireError(.outOfRange, "offset \(hex(offset)) + length \(hex(length)) wraps around"))
        }
        guard offset + length <= elrangeSize else {
            return .failure(
                WireError(.outOfRange, "range [\(hex(offset)), \(hex(offset + length))) ends beyond ELRANGE size \(hex(elrangeSize))"))
        }
        return .success(PageRange(first: offset >> Page.shift, count: length >> Page.shift))
    }

    public var description: String { "[\(hex(offset)), +\(hex(length)))" }

    static let wireSize = 16
    func encode(_ w: inout WireWriter) {
        w.u64(offset)
        w.u64(length)
    }
    static func decode(_ r: inout WireReader, _ field: String) throws(DecodeError) -> WireRange {
        WireRange(offset: try r.u64("\(field).offset"), length: try r.u64("\(field).length"))
    }
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// Which device backs an enclave, as reported by the daemon.
public enum WireDeviceKind: UInt8, Sendable, CustomStringConvertible {
    case kernel = 1
    case simulated = 2
    public var description: String { self == .kernel ? "kernel" : "simulated" }
}

/// Permissions on the wire: the SECINFO R/W/X bits; other bits are invalid.
extension PagePermissions {
    static func decode(_ r: inout WireReader, _ field: String) throws(DecodeError) -> PagePermissions {
        let at = r.position
        let raw = try r.u8(field)
        guard raw & ~0x7 == 0 else { throw DecodeError("\(field): 0x\(String(raw, radix: 16)) has bits other than R/W/X", at: at) }
        return PagePermissions(rawValue: raw)
    }
}

/// A named counter in a status or stats reply (extensible without a protocol change).
public struct WireCounter: Hashable, Sendable {
    public var name: String
    public var value: UInt64
    public init(_ name: String, _ value: UInt64) {
        self.name = name
        self.value = value
    }
    func encode(_ w: inout WireWriter) {
        w.string(name)
        w.u64(value)
    }
    static func decode(_ r: inout WireReader) throws(DecodeError) -> WireCounter {
        WireCounter(try r.string("counter.name", maxBytes: 128), try r.u64("counter.value"))
    }
}
