import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Synchronization

/// `edmm-sim run`'s own view of the machine: a connection to edmmd (STATUS) and the simulated
/// EPC it handed over (EPC use and evictions). It also tells when edmmd went away: a
/// SHUTDOWN_NOTICE, or the connection lost.
final class RunObserver {
    private(set) var connection: EDMMConnection
    let machine: SimulatedMachine
    /// STATUS when the run began (or when edmmd came back after a restart: its figures start over).
    private(set) var initial: StatusReply
    private let watch = DaemonWatch()

    /// Why edmmd went away, once it has: the notice's message or how the connection ended.
    final class DaemonWatch: Sendable {
        let reason = Mutex<String?>(nil)

        func deliver(_ event: ConnectionEvent) {
            switch event {
            case .push(let push):
                if case .shutdown(let notice) = push.push { reason.withLock { $0 = $0 ?? "SHUTDOWN_NOTICE: \(notice.message)" } }
            case .closed(let error) where error != .closedByClient:
                reason.withLock { $0 = $0 ?? "the connection was lost: \(error)" }
            default:
                break
            }
        }
    }

    struct NotSimulated: Error, CustomStringConvertible {
        let reason: String
        var description: String {
            "edmmd runs on the kernel's SGX device (\(reason)); edmm-sim run needs its simulated EPC: start edmmd with --simulate"
        }
    }

    init(socket: String) async throws {
        connection = try await EDMMConnection.connect(socketPath: socket, clientName: "edmm-sim run", events: watch.deliver)
        initial = try await connection.status()
        guard let fd = connection.machineDescriptor else { throw NotSimulated(reason: initial.modeReason) }
        machine = try SimulatedMachine.open(fd: fd)
    }

    /// Why edmmd went away; nil while it serves.
    var daemonGone: String? { watch.reason.withLock { $0 } }

    /// Connects to edmmd again, offering the run's simulated EPC (an edmmd restarted without its
    /// FD store takes it over, so that the hosts' enclaves can come back). False while no edmmd
    /// answers there, or while it runs another EPC.
    func reconnect(socket: String) async -> Bool {
        guard
            let again = try? await EDMMConnection.connect(
                socketPath: socket, clientName: "edmm-sim run", simulatedMachine: machine.fd, events: watch.deliver),
            let status = try? await again.status()
        else { return false }
        guard let fd = again.machineDescriptor, (try? SimulatedMachine.open(fd: fd))?.uuidString == machine.uuidString else {
            again.close()
            return false
        }
        connection.close()
        (connection, initial) = (again, status)
        watch.reason.withLock { $0 = nil }
        return true
    }

    struct Snapshot {
        var elapsed: Duration
        var enclaves: UInt32
        var progress: HostProgress
        var committedBytes: UInt64
        var totalBytes: UInt64
        var usedPages: UInt64
        var ewb: UInt64
    }

    func snapshot(_ progress: HostProgress, elapsed: Duration) async -> Snapshot {
        let status = try? await connection.status()
        let stats = machine.stats
        return Snapshot(
            elapsed: elapsed, enclaves: status?.enclaves ?? 0, progress: progress,
            committedBytes: status?.epcCommittedBytes ?? 0, totalBytes: status?.epcTotalBytes ?? stats.epcPages * 4096,
            usedPages: stats.usedPages, ewb: stats.ewb)
    }
}

/// The once-a-second line of `--live`.
final class LiveTicker {
    private let enabled: Bool
    private let stream: Int32
    private let isTerminal: Bool
    private var last: (at: Duration, requests: UInt64) = (.zero, 0)
    private var nextTick = ContinuousClock.now + .seconds(1)
    private var printed = false

    init(enabled: Bool, toStandardError: Bool) {
        self.enabled = enabled
        stream = toStandardError ? STDERR_FILENO : STDOUT_FILENO
        isTerminal = isatty(stream) == 1
    }

    func due() -> Bool {
        guard enabled, ContinuousClock.now >= nextTick else { return false }
        nextTick = ContinuousClock.now + .seconds(1)
        return true
    }

    func show(_ s: RunObserver.Snapshot) {
        let seconds = s.elapsed.inSeconds
        let dt = seconds - last.at.inSeconds
        let rate = dt > 0 ? Double(s.progress.requests &- last.requests) / dt : 0
        last = (s.elapsed, s.progress.requests)
        let sim = s.progress.sim
        let perIoctl = sim.ioctls > 0 ? Double(sim.ioctlPages) / Double(sim.ioctls) : 0
        let line =
            "\(Int(seconds))s  \(s.enclaves) enclaves  \(grouped(UInt64(rate))) req/s  ioctls \(grouped(sim.ioctls))"
            + "  \(fixed(perIoctl, 1)) pages/ioctl  EPC \(mebibytes(s.committedBytes))/\(mebibytes(s.totalBytes)) MiB committed"
            + " (\(mebibytes(s.usedPages * 4096)) resident, EWB \(grouped(s.ewb)))  exits \(grouped(sim.exits))"
        write(isTerminal ? "\r\u{1B}[K" + line : line + "\n")
        printed = true
    }

    func finish() {
        if printed && isTerminal { write("\n") }
    }

    private func write(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.write(stream, $0.baseAddress, $0.count - 1) }
    }
}

/// "12,345,678".
func grouped(_ value: UInt64) -> String {
    let digits = Array(String(value))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(d)
    }
    return out
}

/// `value` with `places` decimals (no Foundation formatting).
func fixed(_ value: Double, _ places: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = UInt64(scaled / scale)
    let fraction = UInt64(scaled) % UInt64(scale)
    let sign = value < 0 && scaled > 0 ? "-" : ""
    guard places > 0 else { return sign + "\(whole)" }
    let digits = String(fraction)
    return sign + "\(whole)." + String(repeating: "0", count: places - digits.count) + digits
}

func mebibytes(_ bytes: UInt64) -> String { fixed(Double(bytes) / 1_048_576, 1) }
