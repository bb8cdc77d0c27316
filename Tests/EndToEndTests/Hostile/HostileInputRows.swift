import CEDMMShims
import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

// MARK: Row builders

extension HostileInputTable {
    /// A valid one-operation STATUS message (id 1), for framing attacks to damage.
    static let status = MessageCodec.encodeRequests([RequestOperation(id: 1, .status)])
    /// An ALLOCATE body: enclave 1, offset 0, one page, RW, no growth (permissions at 24, bool at 25).
    static let allocateBody: [UInt8] = le(UInt64(1)) + le(UInt64(0)) + le(UInt64(4096)) + [3, 0]

    /// Bytes that cannot be decoded as a message: answered with `code` (id 0), connection open.
    static func replyRow(_ name: String, _ code: WireErrorCode, _ bytes: @escaping @Sendable () -> [UInt8]) -> HostileCase {
        HostileCase(name: name) { c in
            let connection = try c.connect()
            try connection.sendRaw(bytes())
            let error = try connection.messageError()
            c.expect(error?.code == code, "\(code), got \(String(describing: error))")
            c.expect(connection.stillServed, "the connection stays open")
        }
    }

    /// An ALLOCATE operation (id 9) whose body is `body`: answered with `code` for that operation.
    static func operationRow(_ name: String, _ code: WireErrorCode, _ body: @escaping @Sendable () -> [UInt8]) -> HostileCase {
        HostileCase(name: name) { c in
            let connection = try c.connect()
            try connection.sendRaw(
                MessageCodec.frame(.request, operations: [RawOp(verb: Verb.allocate.rawValue, body: body()).bytes(id: 9)]))
            let error = try connection.reply(to: 9).error
            c.expect(error?.code == code, "\(code), got \(String(describing: error))")
            c.expect(connection.stillServed, "the connection stays open")
        }
    }

    /// A REGISTER carrying the descriptor `make` opens: bad-descriptor, and edmmd keeps no copy.
    static func descriptorRow(_ name: String, _ make: @escaping @Sendable (SimulatedMachine) throws -> Int32) -> HostileCase {
        HostileCase(name: name) { c in
            let connection = try c.connect()
            let fd = try make(c.machine)
            guard fd >= 0 else { throw HostileSetupFailure("opening \(name): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let enclave = try AttackerEnclave(machine: c.machine)
            let error = try connection.error(of: registerRequest(enclave), descriptors: [fd])
            c.expect(error?.code == .badDescriptor, "bad-descriptor, got \(String(describing: error))")
            c.expect(connection.stillServed, "the connection stays open")
        }
    }

    static func descriptorRow(_ name: String, _ make: @escaping @Sendable () throws -> Int32) -> HostileCase {
        descriptorRow(name) { (_: SimulatedMachine) in try make() }
    }

    /// TRIM of `range` on the attacker's own enclave (4 MiB ELRANGE): answered with `code`.
    static func rangeRow(_ name: String, _ code: WireErrorCode, _ range: WireRange) -> HostileCase {
        HostileCase(name: name) { c in
            let connection = try c.connect()
            let enclave = try c.registeredEnclave(on: connection, pages: 1)
            let error = try connection.error(of: .trim(RangeRequest(enclave: enclave.handle, range: range)))
            c.expect(error?.code == code, "\(code), got \(String(describing: error))")
            c.expect(connection.stillServed, "the connection stays open")
        }
    }

    static func registerRequest(_ enclave: AttackerEnclave) -> Request {
        .register(RegisterRequest(base: enclave.base, size: enclave.size, label: "attacker"))
    }
}

/// An operation with any verb code and body, encoded by hand.
struct RawOp {
    var verb: UInt16
    var word: UInt16 = 0
    var body: [UInt8]

    func bytes(id: UInt64) -> [UInt8] { le(verb) + le(word) + le(UInt32(body.count)) + le(id) + body }
}

func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

/// `bytes` with `value` written little-endian at `offset`.
func patched<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, _ value: T) -> [UInt8] {
    var copy = bytes
    copy.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: le(value))
    return copy
}

/// A pipe; (read end, write end), both close-on-exec.
func makePipe() throws -> (read: Int32, write: Int32) {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { throw HostileSetupFailure("pipe: \(String(cString: strerror(errno)))") }
    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    return (ends[0], ends[1])
}
