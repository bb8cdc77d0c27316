import FoundationEssentials

/// One JSON line a soak host writes to `edmm-sim soak` (internal to the soak).
struct SoakLine: Codable {
    enum Kind: String, Codable {
        /// Registered; working.
        case ready
        /// Once a second from a task of its own, even while the host waits: what it waits for.
        case progress
        /// The result of one self-check (enclave at rest; EPCM against its own record and edmmd's ledger).
        case check
        /// At rest after "pause"; waits for "resume".
        case paused
        /// Gave its enclave up (UNREGISTER, or just closed the connection) and registered a new one.
        case restarted
        /// Final check done after "stop"; waits for "exit".
        case stopped
        /// Something that must not happen; the host exits 1 after this line.
        case failed
    }

    var kind: Kind
    var enclave: UInt64?
    var requests: UInt64?
    var refusals: UInt64?
    var phase: String?
    var waitingFor: [String: Int]?
    var problems: [String]?

    init(_ kind: Kind, enclave: UInt64? = nil, problems: [String]? = nil) {
        self.kind = kind
        self.enclave = enclave
        self.problems = problems
    }

    var encoded: String {
        guard let data = try? JSONEncoder().encode(self) else { return #"{"kind":"failed","problems":["unencodable line"]}"# }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ text: String) -> SoakLine? { try? JSONDecoder().decode(SoakLine.self, from: Data(text.utf8)) }
}

/// Commands `edmm-sim soak` sends to its hosts, one per line.
enum SoakCommandWord: String {
    /// Finish the current batch, come to rest (SYNC, notices honoured) and say "paused".
    case pause
    case resume
    /// Stop working, run a final check and say "stopped".
    case stop
    /// Unregister and exit.
    case exit
}
