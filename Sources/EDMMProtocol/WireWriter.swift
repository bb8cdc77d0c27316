/// Appends little-endian fields to a byte buffer. Encoding never fails; limits are checked by
/// the caller (`Message.encode`) against the size of the result.
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { append(v) }
    public mutating func u32(_ v: UInt32) { append(v) }
    public mutating func u64(_ v: UInt64) { append(v) }
    public mutating func i32(_ v: Int32) { append(UInt32(bitPattern: v)) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func f64(_ v: Double) { append(v.bitPattern) }

    /// A UTF-8 string with a u16 byte-length prefix.
    public mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u16(UInt16(truncatingIfNeeded: utf8.count))
        bytes.append(contentsOf: utf8.prefix(Int(UInt16.max)))
    }

    /// A u32 count followed by the elements.
    public mutating func list<T>(_ items: [T], _ encode: (inout WireWriter, T) -> Void) {
        u32(UInt32(truncatingIfNeeded: items.count))
        for item in items { encode(&self, item) }
    }

    public mutating func raw(_ other: [UInt8]) { bytes.append(contentsOf: other) }

    /// Overwrites a u32 at `offset` (used to patch length fields after the body is written).
    public mutating func patchU32(at offset: Int, _ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { raw in
            for i in 0..<4 { bytes[offset + i] = raw[i] }
        }
    }

    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
}
