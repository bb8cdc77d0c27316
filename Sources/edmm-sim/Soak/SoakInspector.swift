import EDMMClient
import EDMMProtocol
import Glibc
import SGXSimulator

/// What `edmm-sim soak` checks of the daemon and the simulated EPC: once a second while clients
/// work (EPC bookkeeping, descriptor count within bounds, memory), and exactly while they are
/// paused or gone (descriptors, the ledgers against the EPC accounting and the EPCM).
final class SoakInspector {
    let connection: EDMMConnection
    let machine: SimulatedMachine
    let daemonPID: Int32
    /// Descriptors edmmd holds besides one per connection and one per enclave (its listener,
    /// the EPC memfd, standard streams, ...), measured before any client came.
    let baseDescriptors: Int
    let maxResidentKiB: UInt64
    let descriptorSlack: Int
    private(set) var samples: [Sample] = []
    private var excessTicks = 0

    struct Sample {
        var seconds: Double
        var residentKiB: UInt64
        var descriptors: Int
        var connections: UInt32
        var enclaves: UInt32
        var committedPages: UInt64
        var requests: UInt64
    }

    struct NotSimulated: Error, CustomStringConvertible {
        var description: String { "edmmd does not run on a simulated EPC; edmm-sim soak needs one (start edmmd with --simulate)" }
    }

    struct Violation: Error, CustomStringConvertible {
        let description: String
    }

    init(socket: String, maxResidentKiB: UInt64, descriptorSlack: Int) async throws {
        connection = try await EDMMConnection.connect(socketPath: socket, clientName: "edmm-sim soak")
        guard let fd = connection.machineDescriptor else { throw NotSimulated() }
        machine = try SimulatedMachine.open(fd: fd)
        let status = try await connection.status()
        daemonPID = Int32(bitPattern: status.daemonPID)
        guard let figures = ProcessFigures.of(pid: daemonPID) else {
            throw Violation(description: "cannot read /proc/\(daemonPID) (edmmd's process); run the soak as root or as edmmd's user")
        }
        baseDescriptors = figures.descriptors - Int(status.connections) - Int(status.enclaves)
        self.maxResidentKiB = maxResidentKiB
        self.descriptorSlack = descriptorSlack
    }

    /// The once-a-second check while clients work. Between an accept and its bookkeeping a
    /// descriptor or two is always in transit, so the count may exceed one per connection and
    /// enclave by `descriptorSlack` for a few seconds, never for long.
    func tick(at seconds: Double) async throws(Violation) {
        if let violation = machine.checkInvariants().first {
            throw Violation(description: "simulated EPC: \(violation)")
        }
        let status = try await status()
        guard let figures = ProcessFigures.of(pid: daemonPID) else { throw Violation(description: "edmmd (pid \(daemonPID)) is gone") }
        samples.append(
            Sample(
                seconds: seconds, residentKiB: figures.residentKiB, descriptors: figures.descriptors, connections: status.connections,
                enclaves: status.enclaves, committedPages: status.epcCommittedBytes / 4096, requests: status.requestsTotal))
        let excess = figures.descriptors - expectedDescriptors(status)
        excessTicks = excess > descriptorSlack ? excessTicks + 1 : 0
        if excessTicks >= 5 {
            throw Violation(
                description:
                    """
                    edmmd holds \(figures.descriptors) descriptors, \(excess) more than its \(status.connections) connections, \
                    \(status.enclaves) enclaves and \(baseDescriptors) of its own, for 5 s
                    """
            )
        }
        if figures.residentKiB > maxResidentKiB {
            throw Violation(
                description: "edmmd's resident memory is \(figures.residentKiB >> 10) MiB, over the limit of \(maxResidentKiB >> 10) MiB")
        }
    }

    /// The exact check while every client is at rest (`clients` of them) or gone: each connection
    /// and enclave accounted for, descriptors exact, the EPC accounting equal to the ledgers, each
    /// ledger equal to its EPCM, the EPCM's own invariants.
    func quiescentCheck(clients: Int) async throws(Violation) {
        // A descriptor can be in passage for a moment (a killed client's connection closing, a
        // scrape's socket): a leak never settles, a race does, so the two are read until they agree.
        var status = try await settled(connections: clients + 1, enclaves: clients)
        guard var figures = ProcessFigures.of(pid: daemonPID) else { throw Violation(description: "edmmd (pid \(daemonPID)) is gone") }
        for _ in 0..<50 where figures.descriptors != expectedDescriptors(status) {
            try? await Task.sleep(for: .milliseconds(100))
            status = try await settled(connections: clients + 1, enclaves: clients)
            guard let again = ProcessFigures.of(pid: daemonPID) else { throw Violation(description: "edmmd (pid \(daemonPID)) is gone") }
            figures = again
        }
        if figures.descriptors != expectedDescriptors(status) {
            throw Violation(
                description:
                    """
                    at rest edmmd holds \(figures.descriptors) descriptors; \(status.connections) connections, \(status.enclaves) \
                    enclaves and \(baseDescriptors) of its own make \(expectedDescriptors(status))
                    """
            )
        }
        let enclaves = try await ledgersEqualTheEPCAccounting()
        for enclave in enclaves {
            let stats: EnclaveStatsReply
            do {
                stats = try await connection.stats(enclave.enclave)
            } catch {
                throw Violation(description: "STATS of enclave \(enclave.enclave): \(error)")
            }
            let mismatches = stats.counters.first { $0.name == "ledger_epcm_mismatches" }?.value ?? 0
            if mismatches > 0 {
                throw Violation(
                    description: "enclave \(enclave.enclave) (\(enclave.label)): its ledger and the EPCM differ on \(mismatches) pages")
            }
        }
        machine.sweepDeadEnclaves()
        if machine.stats.aliveEnclaves != enclaves.count {
            throw Violation(
                description: "the simulated EPC holds \(machine.stats.aliveEnclaves) live enclaves, edmmd has \(enclaves.count) registered")
        }
        if let violation = machine.checkInvariants().first { throw Violation(description: "simulated EPC: \(violation)") }
    }

    /// The enclaves, once the sum of their ledgers equals edmmd's EPC accounting. Even with every
    /// client paused, edmmd may reclaim pool pages under EPC pressure and a client's event task
    /// answers the notice, so the two views (ENCLAVES, STATUS) are read until they come from one
    /// moment: a drift never settles, a race does, within 15 s.
    private func ledgersEqualTheEPCAccounting() async throws(Violation) -> [EnclaveSummary] {
        var last = (ledgers: UInt64(0), accounting: UInt64(0))
        for _ in 0..<150 {
            let before = try await status()
            let enclaves: [EnclaveSummary]
            do {
                enclaves = try await connection.allEnclaves()
            } catch {
                throw Violation(description: "ENCLAVES: \(error)")
            }
            let after = try await status()
            let ledgers = enclaves.reduce(UInt64(0)) {
                $0 + $1.committedPages + $1.pooledPages + $1.trimmingPages + $1.removingPages + $1.tcsPages
            }
            last = (ledgers, after.epcCommittedBytes / 4096)
            if before.epcCommittedBytes == after.epcCommittedBytes && ledgers == last.accounting { return enclaves }
            try? await Task.sleep(for: .milliseconds(100))
        }
        throw Violation(description: "accounting drift: the ledgers hold \(last.ledgers) pages, edmmd's EPC accounting \(last.accounting)")
    }

    /// Once every client is gone: nothing registered, nothing committed, nothing resident, and
    /// edmmd back to its own descriptors.
    func finalCheck() async throws(Violation) {
        try await quiescentCheck(clients: 0)
        let status = try await status()
        if status.epcCommittedBytes != 0 {
            throw Violation(description: "\(status.epcCommittedBytes) bytes still committed with no client left")
        }
        if machine.stats.usedPages != 0 {
            throw Violation(description: "\(machine.stats.usedPages) EPC pages still in use with no client left")
        }
    }

    /// STATUS, polled until the daemon shows `connections` and `enclaves` (a killed client's
    /// cleanup takes a moment), for at most 15 s.
    private func settled(connections: Int, enclaves: Int) async throws(Violation) -> StatusReply {
        var status = try await status()
        for _ in 0..<300 where Int(status.connections) != connections || Int(status.enclaves) != enclaves {
            try? await Task.sleep(for: .milliseconds(50))
            status = try await self.status()
        }
        guard Int(status.connections) == connections, Int(status.enclaves) == enclaves else {
            throw Violation(
                description:
                    "edmmd shows \(status.connections) connections and \(status.enclaves) enclaves; \(connections) and \(enclaves) expected"
            )
        }
        return status
    }

    private func status() async throws(Violation) -> StatusReply {
        do {
            return try await connection.status()
        } catch {
            throw Violation(description: "STATUS: \(error)")
        }
    }

    private func expectedDescriptors(_ status: StatusReply) -> Int {
        baseDescriptors + Int(status.connections) + Int(status.enclaves)
    }

    /// The samples as CSV, one line a second.
    var csv: String {
        "seconds,rss_kib,fds,connections,enclaves,committed_pages,requests\n"
            + samples.map {
                [
                    "\(Int($0.seconds))", "\($0.residentKiB)", "\($0.descriptors)", "\($0.connections)", "\($0.enclaves)",
                    "\($0.committedPages)", "\($0.requests)",
                ].joined(separator: ",")
            }.joined(separator: "\n") + "\n"
    }
}
