import EDMMCore
import EDMMProtocol

/// What it takes to rebuild one enclave's registration after a daemon restart, next to its
/// descriptor: identity, ELRANGE, owner and the ledger's settled page states. Serialized into a
/// small binary blob (for systemd's FD store, in a memfd) with `encoded()` / `init(decoding:)`.
///
/// Queued work does not survive a restart: a page with an ioctl queued is recorded in the state it
/// had before (its client never got an answer and will retry or re-register).
@dynamicMemberLookup
public struct EnclaveRecord: Equatable, Sendable {
    public var identity: EnclaveIdentity
    /// Tracked ranges in page order, with their settled states.
    public var pages: [RangeMap<PageState>.Entry]

    public init(identity: EnclaveIdentity, pages: [RangeMap<PageState>.Entry]) {
        self.identity = identity
        self.pages = pages
    }

    public subscript<T>(dynamicMember keyPath: KeyPath<EnclaveIdentity, T>) -> T { identity[keyPath: keyPath] }

    static let magic: UInt64 = 0x4745_444C_4D4D_4445  // "EDMMLDEG" in byte order
    /// 2 added the owner's Kubernetes scope, 3 the identity's options; older records are still
    /// read (without them).
    static let version: UInt16 = 3

    /// The ledger these pages describe, rebuilt through the ledger's own transitions.
    public func rebuildLedger() throws(LedgerError) -> EnclaveLedger {
        var ledger = EnclaveLedger(managedRange: identity.managed)
        for entry in pages {
            let range = entry.range
            switch entry.value {
            case .committed(let permissions):
                _ = try ledger.allocate(range, permissions: permissions)
            case .pooled(let permissions, let since):
                _ = try ledger.allocate(range, permissions: permissions)
                try ledger.free(range, at: since)
            case .trimmed:
                _ = try ledger.allocate(range, permissions: .rw)
                try ledger.trim(range)
                try ledger.complete(.trim, range)
            case .tcs:
                _ = try ledger.allocate(range, permissions: .rw)
                try ledger.makeTCS(range)
                try ledger.complete(.makeTCS, range)
            case .trimQueued, .removeQueued, .restrictQueued, .tcsQueued:
                throw .wrongState(.allocate, page: range.first, actual: entry.value)
            }
        }
        return ledger
    }

    /// The settled state of a page whose queued ioctl will never run.
    static func settled(_ state: PageState) -> PageState {
        switch state {
        case .trimQueued(let origin):
            switch origin {
            case .committed(let permissions): .committed(permissions)
            case .pooled(let permissions, let since): .pooled(permissions, since: since)
            case .tcs: .tcs
            }
        case .removeQueued: .trimmed
        case .restrictQueued(let from, _), .tcsQueued(let from): .committed(from)
        case .committed, .pooled, .trimmed, .tcs: state
        }
    }

    // MARK: Serialization

    public func encoded() -> [UInt8] {
        var w = WireWriter(capacity: 128 + pages.count * 26)
        w.u64(Self.magic)
        w.u16(Self.version)
        identity.encode(into: &w)
        w.list(pages) { w, entry in
            w.u64(entry.range.first)
            w.u64(entry.range.count)
            switch entry.value {
            case .committed(let permissions):
                w.u8(1)
                w.u8(permissions.rawValue)
            case .pooled(let permissions, let since):
                w.u8(2)
                w.u8(permissions.rawValue)
                w.u64(since.nanoseconds)
            case .trimmed:
                w.u8(3)
            case .tcs:
                w.u8(4)
            default:
                // `init(enclave:)` settles every state; keep the encoding total anyway.
                w.u8(0)
            }
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        var r = WireReader(bytes)
        guard try r.u64("magic") == Self.magic else { throw DecodeError("not an edmmd enclave record", at: 0) }
        let versionAt = r.position
        let version = try r.u16("version")
        guard (1...Self.version).contains(version) else { throw DecodeError("unsupported record version", at: versionAt) }
        identity = try EnclaveIdentity(decoding: &r, recordVersion: version)
        pages = try r.list("pages", maxCount: .max / 32, minElementBytes: 17) { (r: inout WireReader) throws(DecodeError) in
            let range = try Self.range(&r, "page range")
            let at = r.position
            let state: PageState
            switch try r.u8("state") {
            case 1: state = .committed(PagePermissions(rawValue: try r.u8("permissions") & 0x7))
            case 2:
                let permissions = PagePermissions(rawValue: try r.u8("permissions") & 0x7)
                state = .pooled(permissions, since: MonotonicInstant(nanoseconds: try r.u64("since")))
            case 3: state = .trimmed
            case 4: state = .tcs
            case let tag: throw DecodeError("unknown page state \(tag)", at: at)
            }
            return RangeMap<PageState>.Entry(range: range, value: state)
        }
        try r.expectEnd("enclave record")
    }

    static func range(_ r: inout WireReader, _ field: String) throws(DecodeError) -> PageRange {
        let at = r.position
        let first = try r.u64("\(field).first")
        let count = try r.u64("\(field).count")
        guard count > 0, first <= UInt64.max - count else { throw DecodeError("\(field): empty or wrapping", at: at) }
        return PageRange(first: first, count: count)
    }
}
