import CEDMMShims
import EDMMCore
import SGXDevice

/// The decoded first word of a page-table entry: the kernel's view of the page (present, type,
/// vm_max_prot_bits) and the page's EPCM entry. Encoded back into one 64-bit store.
struct PageWord: Equatable {
    var flags: UInt8
    var kernelType: UInt8
    var epcmType: UInt8
    var prot: UInt8
    var mapGen: UInt32

    init(_ word: UInt64) {
        flags = UInt8(truncatingIfNeeded: word)
        kernelType = UInt8(truncatingIfNeeded: word >> 8)
        epcmType = UInt8(truncatingIfNeeded: word >> 16)
        prot = UInt8(truncatingIfNeeded: word >> 24)
        mapGen = UInt32(truncatingIfNeeded: word >> 32)
    }

    var word: UInt64 {
        UInt64(flags) | UInt64(kernelType) << 8 | UInt64(epcmType) << 16 | UInt64(prot) << 24 | UInt64(mapGen) << 32
    }

    var present: Bool { flags & UInt8(EDMM_PAGE_PRESENT) != 0 }
    var pending: Bool { flags & UInt8(EDMM_PAGE_PENDING) != 0 }
    var modified: Bool { flags & UInt8(EDMM_PAGE_MODIFIED) != 0 }
    var pr: Bool { flags & UInt8(EDMM_PAGE_PR) != 0 }

    var epcmPermissions: PagePermissions {
        get { PagePermissions(rawValue: prot & 0x7) }
        set { prot = (prot & 0x70) | (newValue.rawValue & 0x7) }
    }
    var vmMaxProt: PagePermissions {
        get { PagePermissions(rawValue: (prot >> 4) & 0x7) }
        set { prot = (prot & 0x7) | (newValue.rawValue & 0x7) << 4 }
    }

    mutating func set(_ flag: UInt32, _ on: Bool) {
        if on { flags |= UInt8(flag) } else { flags &= ~UInt8(flag) }
    }

    /// A fresh page as the kernel creates it: `epcm` and `kernelType` given, PTEs of the old
    /// page (if any) stay invalid because `mapGen` carries over.
    static func newPage(type: SGXPageType, epcm: PagePermissions, vmMax: PagePermissions, pending: Bool, mapGen: UInt32)
        -> PageWord
    {
        var w = PageWord(0)
        w.flags = UInt8(EDMM_PAGE_PRESENT) | (pending ? UInt8(EDMM_PAGE_PENDING) : 0)
        w.kernelType = type.rawValue
        w.epcmType = type.rawValue
        w.epcmPermissions = epcm
        w.vmMaxProt = vmMax
        w.mapGen = mapGen
        return w
    }

    var state: EPCMState { EPCMState(self) }
}

extension EPCMState {
    init(_ w: PageWord) {
        guard w.present else {
            self = .hole
            return
        }
        switch (SGXPageType(rawValue: w.epcmType), w.pending, w.modified, w.pr) {
        case (.reg?, true, false, false): self = w.epcmPermissions == .rw ? .regPending : .invalid
        case (.reg?, false, false, false): self = .reg
        case (.reg?, false, false, true): self = .regPR
        case (.tcs?, false, true, false): self = w.epcmPermissions == .none ? .tcsModified : .invalid
        case (.tcs?, false, false, false): self = w.epcmPermissions == .none ? .tcs : .invalid
        case (.trim?, false, true, false): self = w.epcmPermissions == .none ? .trimModified : .invalid
        case (.trim?, false, false, false): self = w.epcmPermissions == .none ? .trim : .invalid
        default: self = .invalid
        }
    }
}

/// One page as seen from outside: the kernel's view and the EPCM entry.
public struct PageInfo: Sendable, Equatable {
    public var state: EPCMState
    /// EPCM R/W/X.
    public var permissions: PagePermissions
    /// The kernel's `entry->type` (nil for a hole).
    public var kernelType: SGXPageType?
    /// The kernel's `vm_max_prot_bits`, the cap for mmap/mprotect.
    public var vmMaxProtection: PagePermissions
    /// Whether the page currently occupies an EPC page (false: evicted, or a hole).
    public var resident: Bool
}
