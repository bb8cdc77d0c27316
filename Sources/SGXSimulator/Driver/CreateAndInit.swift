import EDMMCore
import Glibc

/// The SGX Enclave Control Structure as `SGX_IOC_ENCLAVE_CREATE` reads it (`struct sgx_secs`
/// of `arch/x86/include/asm/sgx.h`, one page). Only the fields ECREATE checks are kept.
public struct SECS: Equatable, Sendable {
    public static let byteCount = 4096

    public var size: UInt64
    public var baseAddress: UInt64
    /// In pages.
    public var ssaFrameSize: UInt32
    public var miscselect: UInt32
    public var attributes: UInt64
    public var xfrm: UInt64
    /// RESERVED1 ... RESERVED4 all zero (MRENCLAVE, MRSIGNER, CONFIGID and the ISV fields are
    /// outputs or inputs ECREATE ignores).
    public var reservedFieldsAreZero: Bool

    public init(
        size: UInt64, baseAddress: UInt64, ssaFrameSize: UInt32 = 1, miscselect: UInt32 = 0,
        attributes: UInt64 = SGXFeatures.mode64Bit, xfrm: UInt64 = 0x3, reservedFieldsAreZero: Bool = true
    ) {
        self.size = size
        self.baseAddress = baseAddress
        self.ssaFrameSize = ssaFrameSize
        self.miscselect = miscselect
        self.attributes = attributes
        self.xfrm = xfrm
        self.reservedFieldsAreZero = reservedFieldsAreZero
    }

    /// Decodes the 4096 bytes of a `struct sgx_secs`.
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.byteCount)
        func u64(_ at: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
        func u32(_ at: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self) }
        func zero(_ range: Range<Int>) -> Bool { bytes[range].allSatisfy { $0 == 0 } }
        self.init(
            size: u64(0), baseAddress: u64(8), ssaFrameSize: u32(16), miscselect: u32(20), attributes: u64(48),
            xfrm: u64(56),
            // reserved1 at 24, reserved2 at 96, reserved3 at 160, reserved4 at 262 (to the end).
            reservedFieldsAreZero: zero(24..<48) && zero(96..<128) && zero(160..<192) && zero(262..<Self.byteCount))
    }

    /// ECREATE's #GP(0) checks on the SECS (SDM Vol. 3D, ECREATE), in no particular order: a
    /// reason when it faults, nil when the SECS is acceptable.
    public var ecreateFault: String? {
        if attributes & SGXFeatures.attributeInit != 0 { return "ATTRIBUTES.INIT is set" }
        if attributes & ~SGXFeatures.attributes != 0 { return "reserved ATTRIBUTES bits" }
        if UInt64(miscselect) & ~UInt64(SGXFeatures.miscselect) != 0 { return "reserved MISCSELECT bits" }
        if xfrm & ~SGXFeatures.xfrm != 0 || xfrm & 0x3 != 0x3 { return "XFRM is not a supported set with x87 and SSE" }
        if ssaFrameSize == 0 || UInt64(ssaFrameSize) * Page.size < SGXFeatures.ssaFrameBytes(xfrm: xfrm, miscselect: miscselect) {
            return "SSAFRAMESIZE is too small for XFRM and MISCSELECT"
        }
        if size < 2 * Page.size || size & (size - 1) != 0 { return "SIZE is not a power of two of at least two pages" }
        if baseAddress & (size - 1) != 0 { return "BASEADDR is not aligned to SIZE" }
        if attributes & SGXFeatures.mode64Bit != 0 {
            if size > 1 << SGXFeatures.maxEnclaveSizeLog2Mode64 { return "SIZE exceeds the 64-bit maximum" }
            if baseAddress > UInt64.max - size { return "ELRANGE wraps around" }
        } else if size > 1 << SGXFeatures.maxEnclaveSizeLog2Mode32 || baseAddress > (1 << 32) - size {
            return "a 32-bit enclave beyond 4 GiB"
        }
        if !reservedFieldsAreZero { return "reserved SECS fields are not zero" }
        return nil
    }
}

/// The SGX features of the simulated CPU: what CPUID leaf 0x12 reports and ECREATE enforces.
public enum SGXFeatures {
    public static let attributeInit: UInt64 = 1 << 0
    public static let attributeDebug: UInt64 = 1 << 1
    public static let mode64Bit: UInt64 = 1 << 2
    public static let attributeProvisionKey: UInt64 = 1 << 4
    public static let attributeEinitTokenKey: UInt64 = 1 << 5
    /// SECS.ATTRIBUTES bits that may be set (CPUID.(EAX=12H,ECX=1):EAX:EBX; INIT is listed
    /// because EINIT sets it).
    public static let attributes: UInt64 = attributeInit | attributeDebug | mode64Bit | attributeProvisionKey | attributeEinitTokenKey
    /// MISCSELECT: EXINFO only (CPUID.(EAX=12H,ECX=0):EBX).
    public static let miscselect: UInt32 = 0x1
    /// XFRM: x87, SSE and AVX (CPUID.(EAX=12H,ECX=1):ECX:EDX).
    public static let xfrm: UInt64 = 0x7
    /// log2 of the largest enclave (CPUID.(EAX=12H,ECX=0):EDX): the simulator's 16 TiB
    /// ELRANGE limit in 64-bit mode, 2 GiB otherwise.
    public static let maxEnclaveSizeLog2Mode64 = 44
    public static let maxEnclaveSizeLog2Mode32 = 31
    /// Where the EPC section starts in the (fictitious) physical address space.
    public static let epcPhysicalBase: UInt64 = 0x8000_0000

    /// The bytes one SSA frame needs: the XSAVE area of `xfrm` (legacy 512 + header 64 + AVX 256),
    /// the MISC region (EXINFO, 16 bytes) and GPRSGX (184 bytes).
    static func ssaFrameBytes(xfrm: UInt64, miscselect: UInt32) -> UInt64 {
        let xsave: UInt64 = 512 + 64 + (xfrm & 0x4 != 0 ? 256 : 0)
        return xsave + (miscselect & 0x1 != 0 ? 16 : 0) + 184
    }
}

extension SimulatedMachine {
    /// CPUID leaf 0x12, sub-leaf `subleaf`, of a CPU with this machine's SGX: (EAX, EBX, ECX,
    /// EDX). Sub-leaf 0: SGX1, SGX2 if the machine has it, MISCSELECT and the largest enclave;
    /// 1: the ATTRIBUTES and XFRM that may be set; 2: one EPC section of the machine's EPC size;
    /// 3 and up: no more sections.
    public func cpuidLeaf12(subleaf: UInt32) -> (eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32) {
        switch subleaf {
        case 0:
            return (
                1 | (supportsSGX2 ? 2 : 0), SGXFeatures.miscselect, 0,
                UInt32(SGXFeatures.maxEnclaveSizeLog2Mode64) << 8 | UInt32(SGXFeatures.maxEnclaveSizeLog2Mode32)
            )
        case 1:
            return (
                UInt32(truncatingIfNeeded: SGXFeatures.attributes), UInt32(truncatingIfNeeded: SGXFeatures.attributes >> 32),
                UInt32(truncatingIfNeeded: SGXFeatures.xfrm), UInt32(truncatingIfNeeded: SGXFeatures.xfrm >> 32)
            )
        case 2:
            // Type 1 (an EPC section) in EAX[3:0], protection type 1 in ECX[3:0]; bits 12 and up
            // of base and size in EAX/ECX, bits 32..51 in EBX/EDX.
            let base = SGXFeatures.epcPhysicalBase
            let size = stats.epcPages * Page.size
            return (
                UInt32(truncatingIfNeeded: base) & 0xFFFF_F000 | 1, UInt32(truncatingIfNeeded: base >> 32) & 0xF_FFFF,
                UInt32(truncatingIfNeeded: size) & 0xFFFF_F000 | 1, UInt32(truncatingIfNeeded: size >> 32) & 0xF_FFFF
            )
        default:
            return (0, 0, 0, 0)
        }
    }
}

/// How `SGX_IOC_ENCLAVE_CREATE` ended.
public enum CreateOutcome {
    case created(SimulatedEnclave)
    case failed(errno: Int32, reason: String)
}

extension SimulatedEnclave {
    /// `SGX_IOC_ENCLAVE_CREATE` on a descriptor that has no enclave yet: the driver's own check
    /// (a SECS.SIZE that is not a power of two is EINVAL, "ECREATE would detect this too" in
    /// `sgx_encl_create()`), then ECREATE, whose #GP the driver returns as EIO. ENOMEM when the
    /// machine has no room for another enclave.
    public static func create(machine: SimulatedMachine, secs: SECS, mapContents: Bool = true) -> CreateOutcome {
        guard secs.size != 0, secs.size & (secs.size - 1) == 0 else {
            return .failed(errno: EINVAL, reason: "SECS.SIZE \(secs.size) is not a power of two")
        }
        if let fault = secs.ecreateFault { return .failed(errno: EIO, reason: "ECREATE #GP: \(fault)") }
        do {
            return .created(try create(machine: machine, base: secs.baseAddress, size: secs.size, mapContents: mapContents))
        } catch {
            switch error {
            case .machineFull: return .failed(errno: ENOMEM, reason: "\(error)")
            case .system(_, let code): return .failed(errno: code, reason: "\(error)")
            default: return .failed(errno: EIO, reason: "\(error)")
            }
        }
    }
}

/// The SIGSTRUCT fields `SGX_IOC_ENCLAVE_INIT` checks before EINIT (`struct sgx_sigstruct`,
/// 1808 bytes). The simulator's EINIT accepts any signature and measurement.
public struct SigStruct: Equatable, Sendable {
    public static let byteCount = 1808

    public var vendor: UInt32
    public var miscselect: UInt32
    public var miscMask: UInt32
    public var attributes: UInt64
    public var xfrm: UInt64
    public var attributesMask: UInt64
    public var xfrmMask: UInt64

    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.byteCount)
        func u64(_ at: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
        func u32(_ at: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self) }
        // header.vendor at 16; the body starts at 900.
        vendor = u32(16)
        miscselect = u32(900)
        miscMask = u32(904)
        attributes = u64(928)
        xfrm = u64(936)
        attributesMask = u64(944)
        xfrmMask = u64(952)
    }

    /// `sgx_ioc_enclave_init()` and `sgx_encl_init()`'s EINVAL checks: the vendor is 0 or 0x8086,
    /// and no enforced (masked) ATTRIBUTES, MISCSELECT or XFRM bit is one the CPU does not have.
    public var initRefusal: String? {
        if vendor != 0 && vendor != 0x8086 { return "SIGSTRUCT vendor 0x\(String(vendor, radix: 16))" }
        if attributes & attributesMask & ~SGXFeatures.attributes != 0 { return "SIGSTRUCT enforces reserved ATTRIBUTES" }
        if miscselect & miscMask & ~SGXFeatures.miscselect != 0 { return "SIGSTRUCT enforces reserved MISCSELECT" }
        if xfrm & xfrmMask & ~SGXFeatures.xfrm != 0 { return "SIGSTRUCT enforces reserved XFRM" }
        return nil
    }
}
