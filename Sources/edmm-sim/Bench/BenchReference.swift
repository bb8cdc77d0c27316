import EDMMClient
import EDMMCore
import EDMMSimHost

/// The physical reference and edmmd measured against it in the same run, interleaved (one round
/// trip of each in turn, then pipelined chunks of each in turn), so that every figure sees the
/// same machine: on a VM, how fast a sleeping thread wakes depends on what else runs.
struct BenchReference: Codable {
    /// One peer's figures.
    struct Exchange: Codable {
        /// One message out, its answer back, one at a time.
        var pingPongUs: LatencySummary
        /// Messages answered per second with `window` in flight.
        var pipelinedPerSecond: Double
    }

    var requestBytes: Int
    var replyBytes: Int
    var window: Int
    var rounds: Int
    var pipelinedMessages: Int
    /// A peer blocked in recv(2): the physical reference of the targets.
    var raw: Exchange
    /// A peer reading with a DispatchSource on a serial queue, as edmmd's sessions do: the cost
    /// of that event path with no work behind it.
    var dispatch: Exchange
    /// edmmd from a raw client (`RawDaemonClient`), as the raw peer is driven: ALLOCATE of a fresh
    /// page (`ping_pong_us`) and FREE/ALLOCATE pipelined.
    var edmmd: Exchange
    /// edmmd: the same FREE/ALLOCATE pipelined through the client library (`EDMMConnection`).
    var pipelinedClientLibraryPerSecond: Double
    /// edmmd: the same fresh ALLOCATE through the client library (`EDMMConnection`).
    var allocateClientLibraryUs: LatencySummary
    /// edmmd: ALLOCATE of a page from the lazy-free pool, through the client library.
    var allocatePooledUs: LatencySummary
    /// Measured CPU time per pipelined request: edmmd's (raw client), and the client library's.
    var daemonCpuUsPerRequest: Double
    var clientCpuUsPerRequest: Double

    static func measure(socketPath: String, rounds: Int, pipelined: Int, window: Int) async throws -> BenchReference {
        let sizes = DaemonProbe.messageSizes
        let raw = try EchoPeer(requestBytes: sizes.request, replyBytes: sizes.reply, dispatch: false)
        let dispatch = try EchoPeer(requestBytes: sizes.request, replyBytes: sizes.reply, dispatch: true)
        let probe = try await DaemonProbe(socketPath: socketPath, window: window)
        let rawClient = try RawDaemonClient(socketPath: socketPath, enclave: probe.host.handle)
        var latency = (
            raw: LatencyHistogram(), dispatch: LatencyHistogram(), fresh: LatencyHistogram(), library: LatencyHistogram(),
            pooled: LatencyHistogram()
        )
        let warmUp = 500
        for round in 0..<(warmUp + rounds) {
            let r = try raw.roundTrip()
            let d = try dispatch.roundTrip()
            let f = try rawClient.allocateFresh()
            let l = try await probe.allocateFresh()
            let p = try await probe.allocatePooled()
            guard round >= warmUp else { continue }
            latency.raw.record(r)
            latency.dispatch.record(d)
            latency.fresh.record(f)
            latency.library.record(l)
            latency.pooled.record(p)
        }
        let chunks = 10
        let chunk = pipelined / chunks / 2 * 2  // even: FREE and ALLOCATE pairs stay whole
        var elapsed: (raw: Duration, dispatch: Duration, edmmd: Duration, library: Duration) = (.zero, .zero, .zero, .zero)
        var daemonCPU = 0.0
        var clientCPU = 0.0
        for _ in 0..<chunks {
            elapsed.raw += try raw.pipelined(chunk, window: window)
            elapsed.dispatch += try dispatch.pipelined(chunk, window: window)
            let daemonBefore = BenchDaemon.cpuSeconds(pid: probe.daemonPID)
            elapsed.edmmd += try rawClient.pipelined(chunk, window: window, over: probe.slots)
            daemonCPU += BenchDaemon.cpuSeconds(pid: probe.daemonPID) - daemonBefore
            let before = processCPUSeconds()
            elapsed.library += try await probe.pipelined(chunk, window: window)
            clientCPU += processCPUSeconds() - before
        }
        let perRequest = 1e6 / Double(chunk * chunks)
        func rate(_ d: Duration) -> Double { Double(chunk * chunks) / d.inSeconds }
        return BenchReference(
            requestBytes: sizes.request, replyBytes: sizes.reply, window: window, rounds: rounds, pipelinedMessages: chunk * chunks,
            raw: Exchange(pingPongUs: LatencySummary(latency.raw), pipelinedPerSecond: rate(elapsed.raw)),
            dispatch: Exchange(pingPongUs: LatencySummary(latency.dispatch), pipelinedPerSecond: rate(elapsed.dispatch)),
            edmmd: Exchange(pingPongUs: LatencySummary(latency.fresh), pipelinedPerSecond: rate(elapsed.edmmd)),
            pipelinedClientLibraryPerSecond: rate(elapsed.library),
            allocateClientLibraryUs: LatencySummary(latency.library), allocatePooledUs: LatencySummary(latency.pooled),
            daemonCpuUsPerRequest: daemonCPU * perRequest,
            clientCpuUsPerRequest: clientCPU * perRequest)
    }
}
