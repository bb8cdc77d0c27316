import CEDMMShims
import EDMMProtocol
import SGXDevice

/// Daemon-wide tallies, each with its STATUS counter name.
enum Tally: Int, CaseIterable {
    case ioctls, connectionsAccepted, connectionsRefused, connectionsDropped, enclavesRegistered
    case enclavesUnregistered, malformedMessages, reclaimNotices, reclaimedPages, registrationsUnchecked
    // Enclave requests the socket loop ran itself, and those it handed to the enclave's queue.
    case servedInline, handedOff
    // Every enclave's ioctls, under the names STATS gives them per enclave.
    case modifyTypesCalls, restrictPermissionsCalls, removePagesCalls, ioctlErrors, retriesEBUSY, retriesEAGAIN, retriesEINTR

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
        case .servedInline: "fast_path_inline"
        case .handedOff: "fast_path_handed_off"
        case .modifyTypesCalls: "ioctl_modify_types_calls"
        case .restrictPermissionsCalls: "ioctl_restrict_permissions_calls"
        case .removePagesCalls: "ioctl_remove_pages_calls"
        case .ioctlErrors: "ioctl_errors"
        case .retriesEBUSY: "retries_ebusy"
        case .retriesEAGAIN: "retries_eagain"
        case .retriesEINTR: "retries_eintr"
        }
    }

    static func calls(_ kind: WireIoctl) -> Tally {
        switch kind {
        case .modifyTypes: .modifyTypesCalls
        case .restrictPermissions: .restrictPermissionsCalls
        case .removePages: .removePagesCalls
        }
    }
}

/// Failed requests of one verb for one reason (nil verb: an unknown verb code).
public struct RequestFailureCount: Sendable, Equatable {
    public var verb: Verb?
    public var reason: WireErrorCode
    public var count: UInt64
}

/// Daemon-wide counters, updated from any queue with relaxed atomic adds (each is a plain tally;
/// readers may see them a moment apart). Every request's reply passes here, so no lock is taken.
public final class DaemonCounters: @unchecked Sendable {
    // @unchecked: the slots are only touched through the shim's atomic loads and adds.
    private static let verbSlots = Verb.allCases.count + 1
    /// Failures by verb and error code (index: the code's raw value), for the metrics' reasons.
    private static let reasonSlots = Int(WireErrorCode.allCases.map(\.rawValue).max() ?? 0) + 1
    private let slots: UnsafeMutablePointer<UInt64>
    private let slotCount = 2 * DaemonCounters.verbSlots + Tally.allCases.count + DaemonCounters.verbSlots * DaemonCounters.reasonSlots

    init() {
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: 0, count: slotCount)
    }

    deinit { slots.deallocate() }

    private func okSlot(_ index: Int) -> Int { index }
    private func failedSlot(_ index: Int) -> Int { Self.verbSlots + index }
    private func tallySlot(_ tally: Tally) -> Int { 2 * Self.verbSlots + tally.rawValue }
    private func reasonSlot(_ index: Int, _ code: WireErrorCode) -> Int {
        2 * Self.verbSlots + Tally.allCases.count + index * Self.reasonSlots + Int(code.rawValue)
    }
    private func load(_ slot: Int) -> UInt64 { edmm_load64(slots + slot) }

    /// A request answered (or completed without a reply), failed with `failure` or not; unknown
    /// verbs count under index 0.
    func record(verbCode: UInt16, failure: WireErrorCode?) {
        let index = Verb(rawValue: verbCode).map { Int($0.rawValue) } ?? 0
        guard let failure else { return edmm_add64(slots + okSlot(index), 1) }
        edmm_add64(slots + failedSlot(index), 1)
        edmm_add64(slots + reasonSlot(index, failure), 1)
    }

    /// One planned ioctl's calls, retries and failure, as the enclave's own counters record them.
    func record(_ outcome: IoctlRunResult, kind: WireIoctl) {
        add(.ioctls, UInt64(outcome.ioctlCalls))
        add(Tally.calls(kind), UInt64(outcome.ioctlCalls))
        add(.retriesEBUSY, UInt64(outcome.retries.ebusy))
        add(.retriesEAGAIN, UInt64(outcome.retries.eagain))
        add(.retriesEINTR, UInt64(outcome.retries.eintr))
        if !outcome.isComplete { add(.ioctlErrors) }
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

    /// Every (verb, reason) that failed at least once.
    public var failures: [RequestFailureCount] {
        var found: [RequestFailureCount] = []
        for index in 0..<Self.verbSlots {
            for code in WireErrorCode.allCases {
                let count = load(reasonSlot(index, code))
                if count > 0 { found.append(RequestFailureCount(verb: Verb(rawValue: UInt16(index)), reason: code, count: count)) }
            }
        }
        return found
    }
}
