import EDMMProtocol
import Synchronization

/// Daemon-wide tallies, each with its STATUS counter name.
enum Tally: Int, CaseIterable {
    case ioctls, connectionsAccepted, connectionsRefused, connectionsDropped, enclavesRegistered
    case enclavesUnregistered, malformedMessages, reclaimNotices, reclaimedPages

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
        }
    }
}

/// Daemon-wide counters, updated from any queue under one small lock.
public final class DaemonCounters: Sendable {
    private struct State {
        var requestsOK = [UInt64](repeating: 0, count: Verb.allCases.count + 1)
        var requestsFailed = [UInt64](repeating: 0, count: Verb.allCases.count + 1)
        var tallies = [UInt64](repeating: 0, count: Tally.allCases.count)
    }

    private let state = Mutex(State())

    init() {}

    /// A request answered (or completed without a reply); unknown verbs count under index 0.
    func record(verbCode: UInt16, ok: Bool) {
        let index = Verb(rawValue: verbCode).map { Int($0.rawValue) } ?? 0
        state.withLock { state in
            if ok { state.requestsOK[index] += 1 } else { state.requestsFailed[index] += 1 }
        }
    }

    func add(_ tally: Tally, _ amount: UInt64 = 1) {
        state.withLock { $0.tallies[tally.rawValue] &+= amount }
    }

    func value(_ tally: Tally) -> UInt64 { state.withLock { $0.tallies[tally.rawValue] } }

    var requestsTotal: UInt64 {
        state.withLock { $0.requestsOK.reduce(0, +) + $0.requestsFailed.reduce(0, +) }
    }

    /// The counters under their names (STATUS, metrics).
    public var named: [WireCounter] {
        let state = state.withLock { $0 }
        var counters: [WireCounter] = []
        for verb in Verb.allCases {
            let name = "\(verb)".lowercased()
            counters.append(WireCounter("requests_\(name)_ok", state.requestsOK[Int(verb.rawValue)]))
            counters.append(WireCounter("requests_\(name)_failed", state.requestsFailed[Int(verb.rawValue)]))
        }
        counters.append(WireCounter("requests_unknown_verb", state.requestsFailed[0]))
        for tally in Tally.allCases { counters.append(WireCounter(tally.name, state.tallies[tally.rawValue])) }
        return counters
    }
}
