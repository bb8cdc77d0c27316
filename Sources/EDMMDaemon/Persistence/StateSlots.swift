import CEDMMShims
import EDMMSystem
import Glibc
import SGXDevice

/// Two memfds that take turns holding the persisted state, so that a daemon killed in the
/// middle of a write (a watchdog abort, SIGKILL) leaves the previous state readable: each write
/// goes to the slot holding the older generation, payload first and header last, and a reader
/// takes the newest slot whose header and checksum agree. Both memfds live in the FD store;
/// rewriting their contents needs no message to systemd, which holds the same open files.
///
/// Not thread-safe: the FD-store keeper's queue owns it.
final class StateSlots {
    static let names = ["state.0", "state.1"]
    static let headerSize = 32
    private static let magic: UInt64 = 0x544F_4C53_4D4D_4445  // "EDMMSLOT" in byte order

    /// The two memfds, in `names` order.
    let descriptors: [Int32]
    private var generation: UInt64 = 0
    private var nextSlot = 0

    /// Takes both descriptors, in `names` order (they are closed on deinit).
    init(_ first: Int32, _ second: Int32) {
        descriptors = [first, second]
    }

    deinit { descriptors.forEach { _ = Glibc.close($0) } }

    /// Two new, empty memfds.
    static func create() -> Result<StateSlots, StateSlotError> {
        var made: [Int32] = []
        for name in names {
            let fd = edmm_memfd_create("edmmd-\(name)", 1)
            guard fd >= 0 else {
                made.forEach { _ = Glibc.close($0) }
                return .failure(StateSlotError(call: "memfd_create", errno: -fd))
            }
            made.append(fd)
        }
        return .success(StateSlots(made[0], made[1]))
    }

    /// The newest valid payload, or nil when neither slot holds one. Later writes go after it.
    func readNewest() -> [UInt8]? {
        var best: (generation: UInt64, slot: Int, payload: [UInt8])?
        for (slot, fd) in descriptors.enumerated() {
            guard let (generation, payload) = Self.read(fd) else { continue }
            if generation > best?.generation ?? 0 { best = (generation, slot, payload) }
        }
        guard let best else { return nil }
        generation = best.generation
        nextSlot = 1 - best.slot
        return best.payload
    }

    /// Writes `payload` as the next generation into the slot not holding the newest one.
    func write(_ payload: [UInt8]) -> Result<Void, StateSlotError> {
        let fd = descriptors[nextSlot]
        let generation = self.generation + 1
        var header = WireHeader(magic: Self.magic, generation: generation, length: UInt64(payload.count), checksum: 0)
        header.checksum = Self.checksum(payload, generation: generation)
        // Invalidate first: a slot whose payload is being rewritten must not pass as complete.
        guard Self.writeAll(fd, [UInt8](repeating: 0, count: Self.headerSize), at: 0),
            ftruncate(fd, off_t(Self.headerSize + payload.count)) == 0,
            Self.writeAll(fd, payload, at: Self.headerSize),
            Self.writeAll(fd, header.bytes, at: 0)
        else { return .failure(StateSlotError(call: "write state", errno: errno)) }
        self.generation = generation
        nextSlot = 1 - nextSlot
        return .success(())
    }

    private struct WireHeader {
        var magic: UInt64
        var generation: UInt64
        var length: UInt64
        var checksum: UInt64

        var bytes: [UInt8] {
            [magic, generation, length, checksum].flatMap { value in (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        }

        init(magic: UInt64, generation: UInt64, length: UInt64, checksum: UInt64) {
            (self.magic, self.generation, self.length, self.checksum) = (magic, generation, length, checksum)
        }

        init(_ bytes: [UInt8]) {
            func word(_ i: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[i * 8 + $1]) << (8 * $1) } }
            self.init(magic: word(0), generation: word(1), length: word(2), checksum: word(3))
        }
    }

    private static func read(_ fd: Int32) -> (UInt64, [UInt8])? {
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_size >= headerSize else { return nil }
        var headerBytes = [UInt8](repeating: 0, count: headerSize)
        guard readAll(fd, &headerBytes, at: 0) else { return nil }
        let header = WireHeader(headerBytes)
        guard header.magic == magic, header.length <= UInt64(status.st_size) - UInt64(headerSize) else { return nil }
        var payload = [UInt8](repeating: 0, count: Int(header.length))
        guard readAll(fd, &payload, at: headerSize), checksum(payload, generation: header.generation) == header.checksum else {
            return nil
        }
        return (header.generation, payload)
    }

    /// FNV-1a over the generation and the payload: it detects a torn write, not an attacker
    /// (only root and the daemon itself can reach these memfds).
    private static func checksum(_ payload: [UInt8], generation: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in (0..<8).map({ UInt8(truncatingIfNeeded: generation >> (8 * $0)) }) + payload {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
        }
        return hash
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    private static func readAll(_ fd: Int32, _ bytes: inout [UInt8], at offset: Int) -> Bool {
        var done = 0
        let count = bytes.count
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }
}

struct StateSlotError: Error, CustomStringConvertible {
    var call: String
    var errno: Int32
    var description: String { "\(call): \(ErrnoName.of(errno))" }
}
