import EDMMClient
import EDMMProtocol
import EDMMSimHost
import FoundationEssentials
import SGXSimulator

/// What the simulator counted for one enclave, in the terms `edmm-sim run` reports.
struct SimTotals: Codable, Equatable {
    /// SGX2 ioctl calls (MODIFY_TYPES, RESTRICT_PERMISSIONS, REMOVE_PAGES), EBUSY refusals included.
    var ioctls: UInt64 = 0
    var ioctlEbusy: UInt64 = 0
    /// Pages those ioctls processed (EMODT + EMODPR + EREMOVE).
    var ioctlPages: UInt64 = 0
    var ocalls: UInt64 = 0
    var eexit: UInt64 = 0
    /// Asynchronous exits: AEX, and the faults the enclave took during its instructions (EAUG
    /// on first touch, ELDU of an evicted page), each of which is an AEX on hardware.
    var aex: UInt64 = 0
    var eaug: UInt64 = 0
    var eaccept: UInt64 = 0
    var emodpe: UInt64 = 0
    var ewb: UInt64 = 0

    init() {}

    /// Wrapping sums: the counters live in shared memory every client of the machine can write.
    init(_ c: CounterSnapshot) {
        ioctls = c[.ioctlModifyTypes] &+ c[.ioctlRestrictPermissions] &+ c[.ioctlRemovePages] &+ c[.ioctlBusy]
        ioctlEbusy = c[.ioctlBusy]
        ioctlPages = c[.emodt] &+ c[.emodpr] &+ c[.eremove]
        ocalls = c[.ocalls]
        eexit = c[.eexit]
        // Exceptions delivered to the host, and faults the driver resolved inside the enclave
        // (each an AEX the host never sees); faults the host takes from outside are none.
        aex = c[.aex] &+ c[.resolvedFaults]
        eaug = c[.eaug]
        eaccept = c[.eaccept]
        emodpe = c[.emodpe]
        ewb = c[.ewb]
    }

    /// Every exit from the enclave: EEXIT (OCALLs and ECALL returns) and AEX.
    var exits: UInt64 { eexit &+ aex }

    /// The exits by kind: OCALLs, ECALL returns (EEXITs that are no OCALL) and AEX.
    var exitBreakdown: ExitBreakdown { ExitBreakdown(ocall: ocalls, ecall: eexit &- ocalls, aex: aex) }

    static func + (a: SimTotals, b: SimTotals) -> SimTotals {
        var s = SimTotals()
        s.ioctls = a.ioctls &+ b.ioctls
        s.ioctlEbusy = a.ioctlEbusy &+ b.ioctlEbusy
        s.ioctlPages = a.ioctlPages &+ b.ioctlPages
        s.ocalls = a.ocalls &+ b.ocalls
        s.eexit = a.eexit &+ b.eexit
        s.aex = a.aex &+ b.aex
        s.eaug = a.eaug &+ b.eaug
        s.eaccept = a.eaccept &+ b.eaccept
        s.emodpe = a.emodpe &+ b.emodpe
        s.ewb = a.ewb &+ b.ewb
        return s
    }
}

/// A running host's counters, sent twice a second.
struct HostProgress: Codable, Equatable {
    var requests: UInt64
    var ioctlRequests: UInt64
    var sim: SimTotals
    /// What the host is doing ("workload", "stopping", "checking"), the requests it waits for
    /// (by verb) and the RECLAIM notices it has not honoured yet: what a stuck host is stuck on.
    var phase: String = ""
    var waitingFor: [String: Int] = [:]
    var unhandledNotices: Int = 0

    var stuckDescription: String {
        let waits = waitingFor.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return "last seen \(phase.isEmpty ? "starting" : phase), waiting for \(waits.isEmpty ? "no reply" : waits)"
            + (unhandledNotices > 0 ? ", \(unhandledNotices) RECLAIM notices unhandled" : "")
    }
}

/// Everything a host reports at the end of a run.
struct HostReport: Codable {
    var label: String
    var workload: String
    var enclave: UInt64
    var pid: Int32
    var requests: UInt64
    var ioctlRequests: UInt64
    var requestsByVerb: [String: UInt64]
    var messages: UInt64
    /// The most requests one of edmmd's flushes served, from its done replies.
    var maxRequestsPerIoctl: UInt32
    var freshPages: UInt64
    var reusedPages: UInt64
    var reclaimNotices: UInt64
    var reclaimedPages: UInt64
    /// Daemon refusals during the workload, by error name (quota-exceeded, ...).
    var refusals: [String: UInt64]
    var sim: SimTotals
    var latencyBuckets: [[UInt64]]
    /// The enclave's own record against the EPCM.
    var hostMatchesEPCM: Bool
    var hostMismatchedPages: UInt64
    var pagesInTransition: UInt64
    var epcmPages: [String: UInt64]
    var ledger: LedgerComparison
    var violations: [String]
    var asyncErrors: [String]
    var problems: [String]

    var latency: LatencyHistogram {
        LatencyHistogram(sparse: latencyBuckets.compactMap { $0.count == 2 ? (Int($0[0]), $0[1]) : nil })
    }
}

/// One line of a host's standard output (internal to `edmm-sim run`; keys as in the structs).
struct HostLine: Codable {
    enum Kind: String, Codable {
        case ready, progress, stopped, report, error
    }

    var kind: Kind
    var progress: HostProgress?
    var report: HostReport?
    var message: String?

    static func encode(_ line: HostLine) -> String {
        guard let data = try? JSONEncoder().encode(line) else { return #"{"kind":"error","message":"unencodable line"}"# }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ text: String) -> HostLine? {
        try? JSONDecoder().decode(HostLine.self, from: Data(text.utf8))
    }
}

/// Enclave exits by kind, as `edmm-sim run` and `edmm-sim bench` report them.
struct ExitBreakdown: Codable {
    var ocall: UInt64
    var ecall: UInt64
    var aex: UInt64
}

/// A latency summary in microseconds (±4.4 %, the histogram's resolution).
struct LatencySummary: Codable {
    var p50: Double?
    var p99: Double?

    init(_ histogram: LatencyHistogram) {
        p50 = histogram.quantileMicros(0.5)
        p99 = histogram.quantileMicros(0.99)
    }
}
