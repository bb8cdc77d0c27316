import EDMMProtocol
import FoundationEssentials

/// STATUS as edmmctl prints it.
struct StatusReport: Encodable {
    struct EPC: Encodable {
        var totalBytes: UInt64
        var committedBytes: UInt64
        var residentBytes: UInt64
        var underPressure: Bool
    }

    var daemonVersion: String
    var pid: UInt32
    var mode: String
    var modeReason: String
    var uptimeSeconds: Double
    var enclaves: UInt32
    var connections: UInt32
    var epc: EPC
    var batching: Bool
    var requestsTotal: UInt64
    var requestsPerSecond: Double
    var ioctlsTotal: UInt64
    var counters: [String: UInt64]

    init(_ s: StatusReply) {
        daemonVersion = s.daemonVersion
        pid = s.daemonPID
        mode = s.mode.description
        modeReason = s.modeReason
        uptimeSeconds = Double(s.uptimeMicros) / 1e6
        enclaves = s.enclaves
        connections = s.connections
        epc = EPC(
            totalBytes: s.epcTotalBytes, committedBytes: s.epcCommittedBytes, residentBytes: s.epcResidentBytes,
            underPressure: s.underPressure)
        batching = s.batching
        requestsTotal = s.requestsTotal
        requestsPerSecond = s.requestsPerSecond
        ioctlsTotal = s.ioctlsTotal
        counters = Dictionary(s.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    var json: String { jsonText(self) }

    /// Enclaves of clients that see only the host side count only the pages edmmd has seen.
    private var lowerBounds: String {
        let count = counters["enclaves_committed_lower_bound"] ?? 0
        return count == 0 ? "" : "; a lower bound (\(count) host-only enclave\(count == 1 ? "" : "s") grow by EAUG edmmd never sees)"
    }

    var text: String {
        let share = epc.totalBytes > 0 ? " (\(percent(epc.committedBytes, of: epc.totalBytes)))" : ""
        let lines = [
            "edmmd \(daemonVersion), pid \(pid), up \(duration(uptimeSeconds))",
            "mode         \(mode): \(modeReason)",
            "enclaves     \(enclaves), connections \(connections)",
            """
            EPC          \(bytes(epc.committedBytes)) committed of \(bytes(epc.totalBytes))\(share), \(bytes(epc.residentBytes)) \
            resident\(epc.underPressure ? ", UNDER PRESSURE" : "")
            """
                + lowerBounds,
            "batching     \(batching ? "on" : "off (--no-batch)")",
            "requests     \(requestsTotal) total, \(String(format1: requestsPerSecond))/s",
            "ioctls       \(ioctlsTotal)",
        ]
        return lines.joined(separator: "\n")
    }
}

/// "1.5 GiB", "640 KiB", "12 B".
func bytes(_ value: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var amount = Double(value)
    var unit = 0
    while amount >= 1024, unit < units.count - 1 {
        amount /= 1024
        unit += 1
    }
    return unit == 0 ? "\(value) B" : "\(String(format1: amount)) \(units[unit])"
}

func percent(_ part: UInt64, of whole: UInt64) -> String {
    "\(String(format1: Double(part) / Double(whole) * 100))%"
}

/// "3d 4h", "2h 5m", "4m 12s", "9s".
func duration(_ seconds: Double) -> String {
    let s = Int(seconds)
    switch s {
    case 86_400...: return "\(s / 86_400)d \(s % 86_400 / 3600)h"
    case 3600...: return "\(s / 3600)h \(s % 3600 / 60)m"
    case 60...: return "\(s / 60)m \(s % 60)s"
    default: return "\(s)s"
    }
}

extension String {
    /// One decimal place, without Foundation's String(format:).
    init(format1 value: Double) {
        guard value.isFinite else {
            self = "\(value)"
            return
        }
        let tenths = (value * 10).rounded()
        let whole = Int(tenths / 10)
        let fraction = Int(abs(tenths.truncatingRemainder(dividingBy: 10)))
        self = "\(tenths < 0 && whole == 0 ? "-" : "")\(whole).\(fraction)"
    }
}
