import EDMMProtocol
import EDMMSystem
import Glibc
import Synchronization

/// The shared machinery of one connection.
///
/// Who owns what:
/// - the reader thread (started by `start`) is the only caller of `transport.receive`; it decodes
///   every message, fills reply slots and calls the event handler;
/// - `state` (a mutex) holds the request-id counter, the table of requests in flight, the tasks
///   waiting for in-flight room, the limits and the terminal error; any thread may take it;
/// - sends happen on the caller's thread, outside the mutex (each sendmsg is one atomic record).
final class ConnectionCore: Sendable {
    let transport: SocketTransport
    private let events: (@Sendable (ConnectionEvent) -> Void)?
    private let state = Mutex(State())

    private struct Pending {
        let slot: ReplySlot
        let verb: Verb
    }

    private struct State {
        var nextID: UInt64 = 1
        var pending: [UInt64: Pending] = [:]
        var roomWaiters: [CheckedContinuation<Void, Never>] = []
        /// What the daemon accepts (defaults until HELLO answers).
        var sendLimits = ProtocolLimits.default
        /// What this side accepts: the larger of the defaults and the daemon's announced limits.
        var receiveLimits = ProtocolLimits.default
        var failure: EDMMClientError?
    }

    init(transport: SocketTransport, events: (@Sendable (ConnectionEvent) -> Void)?) {
        self.transport = transport
        self.events = events
    }

    func start() throws(EDMMClientError) {
        guard OSThread.startDetached({ self.readLoop() }) else { throw .receiveFailed(errno: EAGAIN) }
    }

    var limits: ProtocolLimits { state.withLock { $0.sendLimits } }

    func adopt(_ announced: ProtocolLimits) {
        state.withLock { s in
            s.sendLimits = announced
            var r = ProtocolLimits.default
            r.maxMessageBytes = max(r.maxMessageBytes, announced.maxMessageBytes)
            r.maxOperationsPerMessage = max(r.maxOperationsPerMessage, announced.maxOperationsPerMessage)
            r.maxRangesPerList = max(r.maxRangesPerList, announced.maxRangesPerList)
            r.maxLabelBytes = max(r.maxLabelBytes, announced.maxLabelBytes)
            r.maxStringBytes = max(r.maxStringBytes, announced.maxStringBytes)
            s.receiveLimits = r
        }
        wakeRoomWaiters()
    }

    // MARK: Sending

    /// Sends `requests` in as few messages as the limits allow, waiting for in-flight room when
    /// the daemon's limit would be exceeded.
    func submit(_ requests: [OutgoingRequest]) async throws(EDMMClientError) -> Submission {
        let limits = self.limits
        for request in requests { try request.validate(limits) }
        var ids: [UInt64] = []
        var slots: [ReplySlot?] = []
        var messages = 0
        let sentAt = ContinuousClock.now
        for chunk in Self.chunks(requests, maxReplies: max(1, limits.maxInFlightRequests)) {
            let numbered = try await reserve(chunk)
            ids += numbered.map(\.id)
            slots += numbered.map(\.slot)
            messages += try send(numbered.map { ($0.id, $0.request) }, slots: numbered.map(\.slot))
        }
        return Submission(ids: ids, messages: messages, sentAt: sentAt, slots: slots)
    }

    /// Splits a batch so that no part expects more replies than may be in flight.
    private static func chunks(_ requests: [OutgoingRequest], maxReplies: Int) -> [[OutgoingRequest]] {
        var chunks: [[OutgoingRequest]] = [[]]
        var replies = 0
        for request in requests {
            if request.expectsReply {
                if replies == maxReplies {
                    chunks.append([])
                    replies = 0
                }
                replies += 1
            }
            chunks[chunks.count - 1].append(request)
        }
        return chunks
    }

    private struct Numbered {
        let id: UInt64
        let request: OutgoingRequest
        let slot: ReplySlot?
    }

    /// Assigns ids and registers reply slots, once the in-flight limit leaves room.
    private func reserve(_ requests: [OutgoingRequest]) async throws(EDMMClientError) -> [Numbered] {
        let needed = requests.filter(\.expectsReply).count
        while true {
            let outcome: Result<[Numbered]?, EDMMClientError> = state.withLock { s in
                if let failure = s.failure { return .failure(failure) }
                guard s.pending.isEmpty || s.pending.count + needed <= s.sendLimits.maxInFlightRequests else {
                    return .success(nil)
                }
                return .success(
                    requests.map { request in
                        let id = s.nextID
                        s.nextID += 1
                        guard request.expectsReply else { return Numbered(id: id, request: request, slot: nil) }
                        let slot = ReplySlot()
                        s.pending[id] = Pending(slot: slot, verb: request.request.verb)
                        return Numbered(id: id, request: request, slot: slot)
                    })
            }
            switch outcome {
            case .failure(let error): throw error
            case .success(let numbered?): return numbered
            case .success(nil): await waitForRoom(needed)
            }
        }
    }

    private func waitForRoom(_ needed: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s in
                if s.failure != nil || s.pending.isEmpty || s.pending.count + needed <= s.sendLimits.maxInFlightRequests {
                    return true
                }
                s.roomWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private func wakeRoomWaiters() {
        let waiters = state.withLock { s in
            defer { s.roomWaiters = [] }
            return s.roomWaiters
        }
        waiters.forEach { $0.resume() }
    }

    /// Packs and sends; returns the number of messages sent. Requests that could not be sent
    /// have their slots failed with the error and are no longer in flight.
    private func send(_ numbered: [(UInt64, OutgoingRequest)], slots: [ReplySlot?]) throws(EDMMClientError) -> Int {
        let messages: [MessagePacker.Message]
        do {
            messages = try MessagePacker.pack(numbered, limits: limits)
        } catch {
            abandon(numbered.map(\.0), error)
            throw error
        }
        for (index, message) in messages.enumerated() {
            do {
                try transport.send(message.bytes, descriptors: message.descriptors)
            } catch {
                let unsent = messages[index...].flatMap { $0.members.map { numbered[$0].0 } }
                abandon(unsent, error)
                return index
            }
        }
        return messages.count
    }

    private func abandon(_ ids: [UInt64], _ error: EDMMClientError) {
        let slots = state.withLock { s in ids.compactMap { s.pending.removeValue(forKey: $0)?.slot } }
        slots.forEach { $0.fill(.failure(error)) }
        wakeRoomWaiters()
    }

    // MARK: Receiving (reader thread only)

    private func readLoop() {
        while true {
            let limits = state.withLock { $0.receiveLimits }
            let received: SocketTransport.Received
            do {
                received = try transport.receive(capacity: limits.maxMessageBytes)
            } catch {
                return finish(error)
            }
            guard case .message(let bytes, let descriptors) = received else { return finish(.daemonClosedConnection) }
            let message: ServerMessage
            do {
                message = try MessageCodec.decodeServerMessage(bytes, limits: limits)
            } catch {
                descriptors.forEach { _ = Glibc.close($0) }
                return finish(.protocolViolation("undecodable message from edmmd: \(error)"))
            }
            switch message {
            case .pushes(let pushes):
                descriptors.forEach { _ = Glibc.close($0) }
                pushes.forEach { events?(.push($0)) }
            case .responses(let responses):
                if let error = deliver(responses, descriptors) { return finish(error) }
            }
        }
    }

    /// Fills the slots of `responses`; returns an error that ends the connection, if any.
    private func deliver(_ responses: [ResponseOperation], _ descriptors: [Int32]) -> EDMMClientError? {
        var descriptors = descriptors
        let now = ContinuousClock.now
        defer { descriptors.forEach { _ = Glibc.close($0) } }
        for response in responses {
            // A message-level error cannot be matched to requests: fail them all.
            if response.id == 0, response.verbCode == 0, case .failure(let error) = response.outcome {
                return .daemon(error)
            }
            let pending = state.withLock { $0.pending.removeValue(forKey: response.id) }
            guard let pending else {
                switch response.outcome {
                case .failure(let error): events?(.fireAndForgetFailed(id: response.id, verbCode: response.verbCode, error: error))
                case .success: events?(.unexpectedReply(id: response.id, verbCode: response.verbCode))
                }
                continue
            }
            wakeRoomWaiters()
            switch response.outcome {
            case .failure(let error):
                pending.slot.fill(.failure(.daemon(error)))
            case .success(let body):
                guard response.verbCode == pending.verb.rawValue, body.answers(pending.verb) else {
                    pending.slot.fill(
                        .failure(.protocolViolation("request \(response.id) (\(pending.verb)) was answered with verb \(response.verbCode)"))
                    )
                    continue
                }
                var attached: [Int32] = []
                if case .hello(let hello) = body, hello.carriesMachineDescriptor { swap(&attached, &descriptors) }
                pending.slot.fill(.success(Reply(body: body, descriptors: attached, receivedAt: now)))
            }
        }
        return nil
    }

    // MARK: Closing

    /// Ends the connection: every outstanding request fails with `error` (the first error
    /// recorded wins) and the handler hears `.closed` once.
    func finish(_ error: EDMMClientError) {
        let (first, slots, waiters): (EDMMClientError?, [ReplySlot], [CheckedContinuation<Void, Never>]) = state.withLock { s in
            let first = s.failure == nil ? error : nil
            if s.failure == nil { s.failure = error }
            let slots = s.pending.values.map(\.slot)
            s.pending = [:]
            defer { s.roomWaiters = [] }
            return (first, slots, s.roomWaiters)
        }
        transport.shutdown()
        let failure = state.withLock { $0.failure } ?? error
        slots.forEach { $0.fill(.failure(failure)) }
        waiters.forEach { $0.resume() }
        if first != nil { events?(.closed(failure)) }
    }

    var failure: EDMMClientError? { state.withLock { $0.failure } }

    /// Requests waiting for their reply, by verb.
    var inFlight: [Verb: Int] {
        state.withLock { s in s.pending.values.reduce(into: [:]) { $0[$1.verb, default: 0] += 1 } }
    }
}
