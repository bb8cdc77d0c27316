import EDMMClient
import EDMMSimHost
import FoundationEssentials
import Testing

/// Every end-to-end test: a real edmmd process on the simulated EPC, real sockets, clients in
/// this process and in child processes. They run one at a time (each starts several processes
/// on a small machine), and each ends by comparing edmmd's ledger and the enclaves' own records
/// with the simulated EPCM.
@Suite(.serialized) struct EndToEnd {}

/// The ledger of every host equals the EPCM, and every host's own record does too.
func expectLedgersMatch(_ hosts: [SimulatedEnclaveHost], sourceLocation: SourceLocation = #_sourceLocation) async {
    for host in hosts {
        let verification = await host.verify()
        #expect(
            verification.matches,
            "\(host.blueprint.label): \(verification.problems + verification.epcm.examples + (verification.ledger?.problems ?? []))",
            sourceLocation: sourceLocation)
    }
}

/// The fields of `edmm-sim run --json` the tests read.
struct RunJSON: Decodable {
    var enclaves: Int
    var batching: Bool
    var requests: UInt64
    var ioctlRequests: UInt64
    var ioctls: UInt64
    var pagesPerIoctl: Double
    var maxRequestsPerIoctl: UInt32
    var exits: UInt64
    var ledgerMatchesEpcm: Bool
    var problems: [String]
    var latencyUs: [String: Double?]

    static func decode(_ text: String) throws -> RunJSON {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RunJSON.self, from: Data(text.utf8))
    }
}
