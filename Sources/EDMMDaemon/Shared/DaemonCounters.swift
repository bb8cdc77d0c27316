import CEDMMShims
import EDMMProtocol

/// Daemon-wide tallies, each with its STATUS counter name.
enum Tally: Int, CaseIterable {
    case ioctls, connectionsAccepted, connectionsRefused, connectionsDropped, enclavesRegistered
    case enclavesUnregistered, malformedMessages, reclaimNotices, reclaimedPages, registrationsUnchecked

    var name: String {
        switch self {
        case .ioctls: "ioctls"
        case .connectionsAccepted: "connections_accepted"
        case .connectionsRefused: "connections_refused"
        case .connectionsDropped: "connections_dropped"
        case .enclavesRegistered: "enclaves_registered"
        case .enclavesUnregistered: "enclaves_unregistered"
        case .malformedMessages: "messages_malformed"
        case .reclaimNotices: "reclaim_notices"
        case .reclaimedPages: "reclaimed_pages"
        case .registrationsUnchecked: "registrations_unchecked"
        }
    }
}

/// Daemon-wide counters, updated from any queue with relaxed atomic adds (each is a plain tally;
/// readers may see them a moment apart). Every request's reply passes here, so no lock is taken.
public final class DaemonCounters: @unchecked Sendable {
    // @unchecked: the slots are only touched through the shim's atomic loads and adds.
    private static let verbSlots = Verb.allCases.count + 1
    private let slots: UnsafeMutablePointer<UInt64>
    private let slotCount = 2 * DaemonCounters.verbSlots + Tally.allCases.count

    init() {
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: 0, count: slotCount)
    }

    deinit { slots.deallocate() }

    private func okSlot(_ index: Int) -> Int { index }
    private func failedSlot(_ index: Int) -> Int { Self.verbSlots + index }
    private func tallySlot(_ tally: Tally) -> Int { 2 * Self.verbSlots + tally.rawValue }
    private func load(_ slot: Int) -> UInt64 { edmm_load64(slots + slot) }

    /// A request answered (or completed without a reply); unknown verbs count under index 0.
    func record(verbCode: UInt16, ok: Bool) {
        let index = Verb(rawValue: verbCode).map { Int($0.rawValue) } ?? 0
        edmm_add64(slots + (ok ? okSlot(index) : failedSlot(index)), 1)
    }

    func add(_ tally: Tally, _ amount: UInt64 = 1) {
        edmm_add64(slots + tallySlot(tally), amount)
    }

    func value(_ tally: Tally) -> UInt64 { load(tallySlot(tally)) }

    var requestsTotal: UInt64 {
        (0..<Self.verbSlots).reduce(0) { $0 &+ load(okSlot($1)) &+ load(failedSlot($1)) }
    }

    /// The counters under their names (STATUS, metrics).
    public var named: [WireCounter] {
        var counters: [WireCounter] = []
        for verb in Verb.allCases {
            let name = "\(verb)".lowercased()
            counters.append(WireCounter("requests_\(name)_ok", load(okSlot(Int(verb.rawValue)))))
            counters.append(WireCounter("requests_\(name)_failed", load(failedSlot(Int(verb.rawValue)))))
        }
        counters.append(WireCounter("requests_unknown_verb", load(failedSlot(0))))
        for tally in Tally.allCases { counters.append(WireCounter(tally.name, value(tally))) }
        return counters
    }
}
