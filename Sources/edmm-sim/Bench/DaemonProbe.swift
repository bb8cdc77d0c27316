import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc

/// edmmd's side of the physical reference: one client in this process and one enclave, requests
/// sent one per message over the client library. Used from one task.
final class DaemonProbe {
    let host: SimulatedEnclaveHost
    /// The committed pages FREE and ALLOCATE cycle through (also the raw client's).
    let slots: PageRange
    private var cursor = 0

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The sizes of a one-ALLOCATE request message and of its reply with one fresh range.
    static var messageSizes: (request: Int, reply: Int) {
        let request = MessageCodec.encodeRequests([RequestOperation(id: 1, .allocate(AllocateRequest(enclave: 1, length: 4096)))])
        let grant = WireRange(offset: 0x10_0000, length: 4096)
        let reply = MessageCodec.encodeResponses([
            ResponseOperation(
                id: 1, verb: .allocate,
                outcome: .success(.allocate(AllocateReply(granted: grant, permissions: .rw, reused: [], fresh: [grant]))))
        ])
        return (request.count, reply.count)
    }

    init(socketPath: String, window: Int) async throws {
        host = try await SimulatedEnclaveHost.launch(socketPath: socketPath, blueprint: EnclaveBlueprint(label: "probe", size: 1 << 30))
        // Committed, accepted pages, so that the pool these probes fill stays far below the
        // reclaim threshold; `slots` are the pages FREE and ALLOCATE cycle through.
        try await host.allocate(pages: 8192)
        slots = try await host.allocate(pages: UInt64(window) * 4)
    }

    deinit { host.close() }

    var daemonPID: pid_t { pid_t(host.connection.hello.daemonPID) }

    private func allocate(_ pages: UInt64) -> Request { .allocate(AllocateRequest(enclave: host.handle, length: pages << Page.shift)) }
    private func free(_ range: WireRange) -> Request { .free(RangeRequest(enclave: host.handle, range: range)) }

    /// Sends one request in a message of its own; returns its reply and round trip (from sending
    /// to the reply's arrival on the connection's reader thread).
    private func roundTrip(_ request: Request) async throws -> (ResponseBody, Duration) {
        let submission = try await host.connection.submit([OutgoingRequest(request)])
        guard case .success(let reply?)? = await submission.replies().first else { throw Failure(description: "\(request.verb) failed") }
        return (reply.body, reply.receivedAt - submission.sentAt)
    }

    /// ALLOCATE of one fresh page: quota admission, ledger, reply. (The page is never accepted.)
    func allocateFresh() async throws -> Duration { try await roundTrip(allocate(1)).1 }

    /// `rounds` fresh one-page ALLOCATEs, one at a time, after 100 unrecorded ones.
    func sampleFreshAllocations(_ rounds: Int, into histogram: inout LatencyHistogram) async throws {
        for round in 0..<(100 + rounds) {
            let elapsed = try await allocateFresh()
            if round >= 100 { histogram.record(elapsed) }
        }
    }

    /// ALLOCATE of one page the lazy-free pool holds (after an untimed FREE of it).
    func allocatePooled() async throws -> Duration {
        _ = try await roundTrip(free(WireRange(offset: slots.byteOffset, length: Page.size)))
        let (body, elapsed) = try await roundTrip(allocate(1))
        guard case .allocate(let grant) = body, grant.fresh.isEmpty else { throw Failure(description: "the pool did not serve ALLOCATE") }
        return elapsed
    }

    /// `count` requests answered, at most `window` in flight: FREE then ALLOCATE of the same page,
    /// over the slot pages in turn. One connection keeps its order, so every ALLOCATE finds its
    /// page in the pool.
    func pipelined(_ count: Int, window: Int) async throws -> Duration {
        var inFlight: [Submission] = []
        inFlight.reserveCapacity(count)
        var head = 0
        func drainOne() async throws {
            guard case .success? = await inFlight[head].replies().first else { throw Failure(description: "a pipelined request failed") }
            head += 1
        }
        let start = ContinuousClock.now
        for _ in 0..<count {
            let page = WireRange(offset: (slots.first + UInt64(cursor / 2) % slots.count) << Page.shift, length: Page.size)
            let request =
                cursor % 2 == 0
                ? free(page) : Request.allocate(AllocateRequest(enclave: host.handle, offset: page.offset, length: Page.size))
            cursor += 1
            if inFlight.count - head == window { try await drainOne() }
            inFlight.append(try await host.connection.submit([OutgoingRequest(request)]))
        }
        while head < inFlight.count { try await drainOne() }
        return ContinuousClock.now - start
    }
}
