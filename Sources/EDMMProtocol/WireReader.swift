/// Why a byte sequence is not a valid message or operation body.
public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    /// Byte offset into the buffer being decoded where the problem was found.
    public var offset: Int
    public init(_ reason: String, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }
    public var description: String { "\(reason) (at byte \(offset))" }
}

/// Reads little-endian fields from a byte buffer with bounds checks on every access. It never
/// traps on hostile input: every failure is a `DecodeError` naming the field and offset.
public struct WireReader {
    private let bytes: [UInt8]
    public private(set) var position: Int
    public let end: Int

    public init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.position = max(0, start)
        self.end = min(end ?? bytes.count, bytes.count)
    }

    public var remaining: Int { end - position }
    public var isAtEnd: Bool { position == end }

    public mutating func u8(_ field: @autoclosure () -> String) throws(DecodeError) -> UInt8 { try fixed(field()) }
    public mutating func u16(_ field: @autoclosure () -> String) throws(DecodeError) -> UInt16 { try fixed(field()) }
    public mutating func u32(_ field: @autoclosure () -> String) throws(DecodeError) -> UInt32 { try fixed(field()) }
    public mutating func u64(_ field: @autoclosure () -> String) throws(DecodeError) -> UInt64 { try fixed(field()) }
    public mutating func i32(_ field: @autoclosure () -> String) throws(DecodeError) -> Int32 { Int32(bitPattern: try u32(field())) }
    public mutating func f64(_ field: @autoclosure () -> String) throws(DecodeError) -> Double { Double(bitPattern: try u64(field())) }

    public mutating func bool(_ field: @autoclosure () -> String) throws(DecodeError) -> Bool {
        let at = position
        switch try u8(field()) {
        case 0: return false
        case 1: return true
        case let v: throw DecodeError("\(field()): \(v) is not a boolean (0 or 1)", at: at)
        }
    }

    /// A u16-length-prefixed UTF-8 string of at most `maxBytes` bytes.
    public mutating func string(_ field: @autoclosure () -> String, maxBytes: Int) throws(DecodeError) -> String {
        let at = position
        let length = Int(try u16("\(field()) length"))
        guard length <= maxBytes else {
            throw DecodeError("\(field()): \(length) bytes, limit \(maxBytes)", at: at)
        }
        guard length <= remaining else {
            throw DecodeError("\(field()): \(length) bytes declared, \(remaining) left", at: at)
        }
        let slice = bytes[position..<position + length]
        guard let s = String(validating: slice, as: UTF8.self) else {
            throw DecodeError("\(field()): not valid UTF-8", at: position)
        }
        position += length
        return s
    }

    /// A u32-count-prefixed list of at most `maxCount` elements, each at least `minElementBytes`
    /// long (so a hostile count cannot make us reserve memory the message does not contain).
    public mutating func list<T>(
        _ field: @autoclosure () -> String, maxCount: Int, minElementBytes: Int,
        _ element: (inout WireReader) throws(DecodeError) -> T
    ) throws(DecodeError) -> [T] {
        let at = position
        let count = Int(try u32("\(field()) count"))
        guard count <= maxCount else {
            throw DecodeError("\(field()): \(count) elements, limit \(maxCount)", at: at)
        }
        guard count * minElementBytes <= remaining else {
            throw DecodeError("\(field()): \(count) elements do not fit in \(remaining) bytes", at: at)
        }
        var items: [T] = []
        items.reserveCapacity(count)
        for _ in 0..<count { items.append(try element(&self)) }
        return items
    }

    public mutating func skip(_ count: Int, _ field: @autoclosure () -> String) throws(DecodeError) {
        guard count >= 0, count <= remaining else {
            throw DecodeError("\(field()): \(count) bytes declared, \(remaining) left", at: position)
        }
        position += count
    }

    /// Fails unless every byte of the body was consumed: trailing bytes mean the sender and we
    /// disagree about the layout, which must not pass silently.
    public func expectEnd(_ what: String) throws(DecodeError) {
        guard isAtEnd else { throw DecodeError("\(what): \(remaining) unexpected trailing bytes", at: position) }
    }

    private mutating func fixed<T: FixedWidthInteger>(_ field: @autoclosure () -> String) throws(DecodeError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else {
            throw DecodeError("\(field()): needs \(size) bytes, \(remaining) left", at: position)
        }
        // `remaining` covers the field and `end` never passes `bytes.count`: one load, no per-byte checks.
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: T.self) }
        position += size
        return T(littleEndian: value)
    }
}
