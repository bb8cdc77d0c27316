import EDMMCore
import EDMMSystem
import Glibc
import SGXDevice
import Synchronization

/// The operations of the kernel selftests' test enclave (`test_encl.c`, reference §11.1), with
/// the fields of their op structs. Outputs (`value` of the GETs, `ret` of EACCEPT) are written
/// back like the enclave writes them into the caller's struct.
public struct EnclaveOp: Sendable, Equatable {
    public enum Kind: UInt64, Sendable {
        case putToBuffer = 0
        case getFromBuffer, putToAddress, getFromAddress, nop, eaccept, emodpe, initTCSPage
    }

    public var kind: Kind
    public var value: UInt64 = 0
    public var address: UInt64 = 0
    public var flags: UInt64 = 0
    public var ret: UInt64 = 0
    public var tcsPage: UInt64 = 0
    public var ssa: UInt64 = 0
    public var entry: UInt64 = 0

    public init(_ kind: Kind) { self.kind = kind }

    public static func put(_ value: UInt64, at address: UInt64) -> EnclaveOp {
        var op = EnclaveOp(.putToAddress)
        op.value = value
        op.address = address
        return op
    }

    public static func get(_ address: UInt64) -> EnclaveOp {
        var op = EnclaveOp(.getFromAddress)
        op.address = address
        return op
    }

    public static func eaccept(_ address: UInt64, _ flags: UInt64) -> EnclaveOp {
        var op = EnclaveOp(.eaccept)
        op.address = address
        op.flags = flags
        return op
    }

    public static func emodpe(_ address: UInt64, _ flags: UInt64) -> EnclaveOp {
        var op = EnclaveOp(.emodpe)
        op.address = address
        op.flags = flags
        return op
    }
}

/// The selftests' test enclave, built the way `load.c` builds it: two TCS pages, RX text, RW
/// data that begins with `encl_buffer` (then SSA frames and a stack page per TCS), a heap, all
/// EADD'ed before EINIT and mapped with their segment's protection; `encl_size` is the smallest
/// power of two holding the image, so unused ELRANGE follows it.
public final class SelftestEnclave: @unchecked Sendable {
    public static let magic: UInt64 = 0x1122_3344_5566_7788
    public static let magic2: UInt64 = 0x8877_6655_4433_2211
    public static let base: UInt64 = 1 << 40

    public struct Segment: Sendable {
        public var offset: UInt64
        public var size: UInt64
        public var secinfo: SecInfoFlags
        public var protection: PagePermissions
    }

    public let machine: SimulatedMachine
    public let enclave: SimulatedEnclave
    public let cpu: EnclaveCPU
    public let segments: [Segment]
    public let heap: Segment
    public let totalSize: UInt64
    public let enclSize: UInt64
    public var base: UInt64 { enclave.base }
    public var tcs1: UInt64 { base }
    public var tcs2: UInt64 { base + Page.size }
    /// Offset of the data segment (`encl_buffer` is its first two pages).
    public let dataOffset: UInt64
    /// `data_start` of the selftests: the second page of `encl_buffer`.
    public var dataStart: UInt64 { base + dataOffset + Page.size }
    /// Offset of `encl_dyn_entry` in the text (the entry of a dynamically created TCS).
    public let dynamicEntryOffset: UInt64

    /// Builds the enclave on `machine` (a new one with `epcPages` when nil). `heapPages` defaults
    /// to the selftests' one page; the oversubscribed cases pass the EPC size.
    public init(
        machine: SimulatedMachine? = nil, epcPages: UInt64 = 1024, sgx2: Bool = true, heapPages: UInt64 = 1,
        initialize: Bool = true
    ) throws {
        self.machine = try machine ?? SimulatedMachine.create(.init(epcPages: epcPages, enclaveCapacity: 16, sgx2: sgx2))
        let tcs = Segment(offset: 0, size: 2 * Page.size, secinfo: .pageType(.tcs), protection: .rw)
        let text = Segment(offset: 2 * Page.size, size: 2 * Page.size, secinfo: [.pageType(.reg), .r, .x], protection: .rx)
        let data = Segment(offset: 4 * Page.size, size: 6 * Page.size, secinfo: [.pageType(.reg), .r, .w], protection: .rw)
        heap = Segment(offset: 10 * Page.size, size: heapPages * Page.size, secinfo: [.pageType(.reg), .r, .w], protection: .rw)
        segments = [tcs, text, data, heap]
        dataOffset = data.offset
        dynamicEntryOffset = text.offset + 0x100
        totalSize = segments.reduce(0) { $0 + $1.size }
        var size = Page.size
        while size < totalSize { size <<= 1 }
        enclSize = size
        enclave = try SimulatedEnclave.create(machine: self.machine, base: Self.base, size: enclSize)
        cpu = try enclave.cpu()
        for segment in segments {
            var rc: Int32
            if segment.secinfo.pageTypeField == SGXPageType.tcs.rawValue {
                var image = [UInt8](repeating: 0, count: Int(segment.size))
                image.withUnsafeMutableBytes { bytes in
                    for i in 0..<Int(segment.size / Page.size) {
                        // OSSA: this TCS's SSA frame (third and fourth data pages); entry: encl_entry.
                        TCSLayout.write(
                            at: bytes.baseAddress! + i * Int(Page.size),
                            ssaOffset: data.offset + UInt64(2 + i) * Page.size, entryOffset: text.offset)
                    }
                }
                rc = image.withUnsafeBytes {
                    enclave.addPages(offset: segment.offset, length: segment.size, secinfo: segment.secinfo, source: $0).errno
                }
            } else {
                rc = enclave.addPages(offset: segment.offset, length: segment.size, secinfo: segment.secinfo).errno
            }
            guard rc == 0 else { throw SimulatorError.invalidConfiguration("EADD failed: \(ErrnoName.of(rc))") }
        }
        if initialize {
            let rc = enclave.initialize()
            guard rc == 0 else { throw SimulatorError.invalidConfiguration("EINIT failed: \(ErrnoName.of(rc))") }
        }
        for segment in segments {
            let rc = enclave.mmap(address: base + segment.offset, length: segment.size, protection: segment.protection)
            guard rc == 0 else { throw SimulatorError.invalidConfiguration("mmap failed: \(ErrnoName.of(rc))") }
        }
    }

    /// `enclu_call`/`__vdso_sgx_enter_enclave` with `op` on `run.tcs`; `op` receives the
    /// enclave's outputs. Returns the vDSO's return value.
    @discardableResult
    public func call(
        _ op: inout EnclaveOp, _ run: inout VDSORun, leaf: UInt32 = ENCLULeaf.eenter,
        userHandler: ((inout VDSORun) -> Int32)? = nil
    ) -> Int32 {
        let box = OpCell(op)
        let buffer = base + dataOffset
        let rc = cpu.vdsoEnterEnclave(function: leaf, run: &run, userHandler: userHandler) { cpu in
            Self.execute(box, cpu: cpu, buffer: buffer)
        }
        op = box.value.withLock { $0 }
        return rc
    }

    /// Convenience for cases that only care about `run`: a fresh run on `tcs`.
    public func call(_ op: EnclaveOp, tcs: UInt64? = nil) -> (rc: Int32, run: VDSORun, op: EnclaveOp) {
        var run = VDSORun(tcs: tcs ?? tcs1)
        var op = op
        let rc = call(&op, &run)
        return (rc, run, op)
    }

    /// The test enclave's `encl_body()` for one op.
    private static func execute(_ cell: OpCell, cpu: EnclaveCPU, buffer: UInt64) -> CPUException? {
        let op = cell.value.withLock { $0 }
        switch op.kind {
        case .putToBuffer:
            if case .failure(let x) = cpu.write(buffer, op.value) { return x }
        case .getFromBuffer:
            switch cpu.read(buffer) {
            case .success(let v): cell.value.withLock { $0.value = v }
            case .failure(let x): return x
            }
        case .putToAddress:
            if case .failure(let x) = cpu.write(op.address, op.value) { return x }
        case .getFromAddress:
            switch cpu.read(op.address) {
            case .success(let v): cell.value.withLock { $0.value = v }
            case .failure(let x): return x
            }
        case .nop:
            break
        case .eaccept:
            switch cpu.eaccept(op.address, flags: SecInfoFlags(rawValue: op.flags)) {
            case .returned(let rax): cell.value.withLock { $0.ret = rax }
            case .exception(let x): return x
            }
        case .emodpe:
            if case .exception(let x) = cpu.emodpe(op.address, flags: SecInfoFlags(rawValue: op.flags)) { return x }
        case .initTCSPage:
            // do_encl_init_tcs_page(): field by field, then the reserved area cleared.
            let t = op.tcsPage
            let words: [(Int, UInt64)] = [
                (TCSLayout.state, 0), (TCSLayout.flags, 0), (TCSLayout.ossa, op.ssa),
                (TCSLayout.cssa, UInt64(1) << 32),  // CSSA = 0, NSSA = 1
                (TCSLayout.oentry, op.entry), (TCSLayout.aep, 0), (TCSLayout.ofsbase, 0), (TCSLayout.ogsbase, 0),
                (TCSLayout.fslimit, 0xFFFF_FFFF_FFFF_FFFF),  // FSLIMIT = GSLIMIT = 0xFFFFFFFF
            ]
            for (offset, value) in words {
                if case .failure(let x) = cpu.write(t + UInt64(offset), value) { return x }
            }
            for offset in stride(from: TCSLayout.reservedStart, to: Int(Page.size), by: 8) {
                if case .failure(let x) = cpu.write(t + UInt64(offset), 0) { return x }
            }
        }
        return nil
    }

    /// The op struct the enclave writes its outputs into.
    private final class OpCell: Sendable {
        let value: Mutex<EnclaveOp>
        init(_ op: EnclaveOp) { value = Mutex(op) }
    }

    // MARK: Kernel-side helpers for the cases

    /// The SGX2 probe of the selftests: an all-zero struct on an initialized enclave; EINVAL
    /// (from `length == 0`) means "supported".
    public func probeErrno() -> Int32 {
        var p = ModifyTypesParams(offset: 0, length: 0, pageType: 0)
        return enclave.modifyTypes(&p)
    }
}
