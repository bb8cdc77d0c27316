/// How generously "anywhere" allocations are granted, so that a growing heap costs few round
/// trips without committing EPC it will not use. Each grant is at least the enclave's current
/// chunk, and the chunk doubles with every consecutive growth (no FREE or TRIM in between) up to
/// `maximumChunkPages`; but the pages granted beyond the asked ones never exceed
/// `heldPercent` % of what the enclave holds, and come in whole multiples of the asked pages.
/// The heap grows geometrically, not the grant: an enclave that holds little (it just started,
/// or tore its heap down) is granted what it asks, and one that holds much may be granted a
/// chunk in proportion.
///
/// Defaults: chunks from 16 pages (64 KiB) up to 2048 pages (8 MiB), at most 6 % of the held
/// pages beyond the asked ones.
public struct GrowthPolicy: Hashable, Sendable {
    public var enabled: Bool
    public var initialChunkPages: UInt64
    public var maximumChunkPages: UInt64
    /// The bound on the pages granted beyond the asked ones, in percent (0-100) of the held pages.
    public var heldPercent: UInt64

    public init(enabled: Bool = true, initialChunkPages: UInt64 = 16, maximumChunkPages: UInt64 = 2048, heldPercent: UInt64 = 6) {
        self.enabled = enabled
        self.initialChunkPages = initialChunkPages
        self.maximumChunkPages = Swift.max(maximumChunkPages, initialChunkPages)
        self.heldPercent = Swift.min(heldPercent, 100)
    }

    public static let disabled = GrowthPolicy(enabled: false)

    /// The pages to grant for a request of `asked` pages when `room` contiguous free pages start
    /// where it is placed, `headroom` fresh pages fit the quotas and the enclave holds `held`
    /// pages; never less than `asked` (the caller checked that `asked` fits), never more than
    /// `room` or `headroom`. Advances the enclave's chunk.
    public func grant(asked: UInt64, room: UInt64, headroom: UInt64, held: UInt64, state: inout GrowthState) -> UInt64 {
        guard enabled else { return asked }
        let chunk = state.chunkPages == 0 ? initialChunkPages : state.chunkPages
        state.chunkPages = chunk > maximumChunkPages / 2 ? maximumChunkPages : chunk * 2
        let extra = held / 100 * heldPercent + held % 100 * heldPercent / 100
        let bound = extra > .max - asked ? .max : asked + extra
        let granted = Swift.max(asked, Swift.min(chunk, room, headroom, bound))
        // The surplus in whole requests of this size: a contiguous heap region is carved for
        // one allocation, so a leftover run shorter than the request that earned it fits only
        // smaller ones, and is likely committed for nothing and given back unused
        // (docs/benchmarks.md, "Growth that fits").
        return asked == 0 ? granted : asked + (granted - asked) / asked * asked
    }
}

/// One enclave's position in its growth sequence.
public struct GrowthState: Hashable, Sendable {
    /// The chunk for the next growth; 0 before the first one.
    public var chunkPages: UInt64 = 0

    public init() {}

    /// Back to the initial chunk (the enclave shrank).
    public mutating func reset() { chunkPages = 0 }
}
