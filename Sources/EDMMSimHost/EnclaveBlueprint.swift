import EDMMCore

/// The simulated enclave a host builds: its ELRANGE, a small image EADDed before EINIT, and the
/// range it lets edmmd manage.
public struct EnclaveBlueprint: Sendable, Equatable {
    /// 1...64 bytes of [A-Za-z0-9._-].
    public var label: String
    /// ELRANGE size, a power of two; the base is the same value (ECREATE wants it size-aligned).
    public var size: UInt64
    /// Start of the managed range (bytes from the base); the image lies below it, and the
    /// managed range runs to the end of ELRANGE.
    public var managedOffset: UInt64
    /// Pages to ask for at REGISTER.
    public var preheatPages: UInt64
    /// Send FREE (and RELAX) without waiting for a reply, as a runtime's free() would.
    public var fireAndForget: Bool
    /// Hand TRIM_ACCEPTED over with the next batch instead of in a message of its own (fewer
    /// exits; `flush()` sends whatever is left).
    public var deferTrimAccepted: Bool
    /// Touch each fresh page of a grant from the host before the enclave EACCEPTs it, so that
    /// the kernel's EAUG fault happens outside the enclave instead of as an AEX per page.
    public var prefaultFreshPages: Bool

    public init(
        label: String, size: UInt64 = 1 << 28, managedOffset: UInt64 = 1 << 20, preheatPages: UInt64 = 0,
        fireAndForget: Bool = true, deferTrimAccepted: Bool = true, prefaultFreshPages: Bool = true
    ) {
        self.label = label
        self.size = size
        self.managedOffset = managedOffset
        self.preheatPages = preheatPages
        self.fireAndForget = fireAndForget
        self.deferTrimAccepted = deferTrimAccepted
        self.prefaultFreshPages = prefaultFreshPages
    }

    /// The image: one TCS, two RX text pages, one RW data page, from offset 0.
    static let image: [(page: UInt64, kind: ImagePage)] = [(0, .tcs), (1, .text), (2, .text), (3, .data)]

    enum ImagePage {
        case tcs, text, data
    }

    public var managedPages: PageRange {
        PageRange(first: managedOffset >> Page.shift, end: size >> Page.shift)
    }
}
