/// Field offsets of the Thread Control Structure (SDM "Layout of Thread Control Structure").
/// A TCS lives in its page's contents, so CSSA/NSSA are shared by every process, as in the EPC.
enum TCSLayout {
    static let state = 0  // u64
    static let flags = 8  // u64, bit 0 DBGOPTIN
    static let ossa = 16  // u64
    static let cssa = 24  // u32
    static let nssa = 28  // u32
    static let oentry = 32  // u64
    static let aep = 40  // u64
    static let ofsbase = 48  // u64
    static let ogsbase = 56  // u64
    static let fslimit = 64  // u32
    static let gslimit = 68  // u32
    static let reservedStart = 72

    /// What the selftests' INIT_TCS_PAGE and the loader write: inactive, CSSA 0, NSSA 1.
    static func write(at p: UnsafeMutableRawPointer, ssaOffset: UInt64, entryOffset: UInt64) {
        p.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        p.storeBytes(of: ssaOffset, toByteOffset: ossa, as: UInt64.self)
        p.storeBytes(of: UInt32(1), toByteOffset: nssa, as: UInt32.self)
        p.storeBytes(of: entryOffset, toByteOffset: oentry, as: UInt64.self)
        p.storeBytes(of: UInt32.max, toByteOffset: fslimit, as: UInt32.self)
        p.storeBytes(of: UInt32.max, toByteOffset: gslimit, as: UInt32.self)
    }

    static func writeDefault(at p: UnsafeMutableRawPointer) { write(at: p, ssaOffset: 0, entryOffset: 0) }

    /// EACCEPT(PT_TCS)'s content checks (SDM): reserved fields zero, DBGOPTIN clear, CSSA < NSSA,
    /// AEP zero, STATE inactive.
    static func isValidForAccept(_ p: UnsafeRawPointer) -> Bool {
        let raw = UnsafeRawBufferPointer(start: p + reservedStart, count: 4096 - reservedStart)
        guard raw.allSatisfy({ $0 == 0 }) else { return false }
        return p.load(fromByteOffset: flags, as: UInt64.self) & 1 == 0
            && p.load(fromByteOffset: cssa, as: UInt32.self) < p.load(fromByteOffset: nssa, as: UInt32.self)
            && p.load(fromByteOffset: aep, as: UInt64.self) == 0
            && p.load(fromByteOffset: state, as: UInt64.self) == 0
    }
}
