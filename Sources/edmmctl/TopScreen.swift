import ArgumentParser
import EDMMProtocol

/// `top`'s ordering, chosen with a key.
enum TopSort: String, CaseIterable, ExpressibleByArgument {
    case committed, pool, requests, ioctls, id, label

    var key: UInt8 {
        switch self {
        case .committed: UInt8(ascii: "c")
        case .pool: UInt8(ascii: "p")
        case .requests: UInt8(ascii: "r")
        case .ioctls: UInt8(ascii: "i")
        case .id: UInt8(ascii: "n")
        case .label: UInt8(ascii: "l")
        }
    }

    init?(key: UInt8) {
        guard let sort = Self.allCases.first(where: { $0.key == key }) else { return nil }
        self = sort
    }

    static var help: String { allCases.map { "\(Character(UnicodeScalar($0.key))) \($0.rawValue)" }.joined(separator: ", ") }
}

/// What `top` shows: the last STATUS and ENCLAVES, with request and ioctl rates computed between
/// two samples.
struct TopScreen {
    struct Row {
        var enclave: EnclaveSummary
        var requestsPerSecond: Double?
        var ioctlsPerSecond: Double?
    }

    var sort: TopSort
    private(set) var status: StatusReply?
    private(set) var rows: [Row] = []
    private var ioctlsPerSecond: Double?
    private var previous: (at: Double, ioctls: UInt64, enclaves: [EnclaveHandle: (requests: UInt64, ioctls: UInt64)])?

    init(sort: TopSort) { self.sort = sort }

    /// A new sample taken at `seconds` on a monotonic clock.
    mutating func update(status: StatusReply, enclaves: [EnclaveSummary], at seconds: Double) {
        let elapsed = previous.map { seconds - $0.at } ?? 0
        func rate(_ now: UInt64, _ before: UInt64?) -> Double? {
            guard let before, elapsed > 0, now >= before else { return nil }
            return Double(now - before) / elapsed
        }
        rows = enclaves.map { enclave in
            let before = previous?.enclaves[enclave.enclave]
            return Row(
                enclave: enclave, requestsPerSecond: rate(enclave.requests, before?.requests),
                ioctlsPerSecond: rate(enclave.ioctls, before?.ioctls))
        }
        ioctlsPerSecond = rate(status.ioctlsTotal, previous?.ioctls)
        self.status = status
        previous = (
            seconds, status.ioctlsTotal,
            Dictionary(enclaves.map { ($0.enclave, ($0.requests, $0.ioctls)) }, uniquingKeysWith: { a, _ in a })
        )
    }

    var sortedRows: [Row] {
        rows.sorted { a, b in
            let (x, y) = (a.enclave, b.enclave)
            switch sort {
            case .id: return x.enclave < y.enclave
            case .label: return (x.label, x.enclave) < (y.label, y.enclave)
            case .committed: return (y.committedPages, x.enclave) < (x.committedPages, y.enclave)
            case .pool: return (y.pooledPages, x.enclave) < (x.pooledPages, y.enclave)
            case .requests: return (b.requestsPerSecond ?? 0, x.enclave) < (a.requestsPerSecond ?? 0, y.enclave)
            case .ioctls: return (b.ioctlsPerSecond ?? 0, x.enclave) < (a.ioctlsPerSecond ?? 0, y.enclave)
            }
        }
    }

    /// The screen: a summary, the table (as many rows as fit in `rows`), and in a terminal the keys.
    func lines(rows height: Int, columns width: Int, interactive: Bool) -> [String] {
        guard let status else { return ["edmmctl top: waiting for edmmd..."] }
        let share = status.epcTotalBytes > 0 ? " (\(percent(status.epcCommittedBytes, of: status.epcTotalBytes)))" : ""
        let resident = status.mode == .simulated ? ", \(bytes(status.epcResidentBytes)) resident" : ""
        var lines = [
            """
            edmmd \(status.daemonVersion) (\(status.mode)), pid \(status.daemonPID), up \(duration(Double(status.uptimeMicros) / 1e6)): \
            \(status.enclaves) enclaves, \(status.connections) connections
            """,
            """
            EPC \(bytes(status.epcCommittedBytes)) committed of \
            \(bytes(status.epcTotalBytes))\(share)\(resident)\(status.underPressure ? "  UNDER PRESSURE" : "")
            """,
            """
            \(String(format1: status.requestsPerSecond)) requests/s, \(ioctlsPerSecond.map { String(format1: $0) } ?? "-") ioctls/s, \
            batching \(status.batching ? "on" : "off")
            """,
            "",
        ]
        var table = Table([
            ("ID", .right), ("LABEL", .left), ("UID", .right), ("COMMITTED", .right), ("POOL", .right), ("TRIMMING", .right),
            ("REQ/S", .right), ("IOCTL/S", .right), ("REQUESTS", .right), ("IDLE", .right),
        ])
        let footer = interactive ? ["sort: \(sort.rawValue)   keys: \(TopSort.help); q quit"] : []
        let room = interactive ? max(1, height - lines.count - 1 - footer.count) : Int.max
        let shown = sortedRows.prefix(room)
        for row in shown {
            let e = row.enclave
            table.rows.append([
                "\(e.enclave)", e.label, "\(e.uid)", pageBytes(e.committedPages), pageBytes(e.pooledPages),
                pageBytes(e.trimmingPages + e.removingPages), row.requestsPerSecond.map { String(format1: $0) } ?? "-",
                row.ioctlsPerSecond.map { String(format1: $0) } ?? "-", "\(e.requests)", duration(Double(e.idleMicros) / 1e6),
            ])
        }
        lines += table.lines(width: interactive ? width : nil)
        if shown.count < rows.count { lines.append("(\(rows.count - shown.count) more)") }
        return lines.map { interactive && $0.count > width ? String($0.prefix(width)) : $0 } + footer
    }
}
