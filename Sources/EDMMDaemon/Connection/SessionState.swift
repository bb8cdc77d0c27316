import Dispatch
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import Logging

/// The state of one connection, reachable only from its queue (`Session.state`): it is not
/// Sendable, so no Dispatch closure can carry it anywhere else. Its methods run on that queue.
final class SessionState {
    unowned let session: Session
    /// The kernel's credentials of the peer, with its Kubernetes scope once HELLO resolved it.
    var peer: PeerCredentials

    enum Phase { case awaitingHello, ready, closed }
    var phase = Phase.awaitingHello
    /// Requests accepted and not yet answered: id -> arrival (for the latency histogram).
    var inFlight: [UInt64: MonotonicInstant] = [:]
    /// Enclaves this connection registered or attached.
    var enclaves: [EnclaveHandle: EnclaveContext] = [:]
    /// REGISTER/ATTACH requests on their way: they hold a slot of the enclave limit.
    var pendingAttachments = 0
    var writeSource: (any DispatchSourceWrite)?
    /// Users of `fd` not yet gone (the socket loop's watch, the write source); the descriptor
    /// closes when this reaches zero.
    var openSources = 1
    /// Encoded replies and pushes waiting to be packed into messages.
    var pendingResponses: [OutgoingOperation] = []
    var pendingPushes: [[UInt8]] = []
    var flushScheduled = false
    /// The read handler (or `writingAfter`) is running: it writes the replies when it ends, none
    /// need scheduling.
    var writesDeferred = false
    /// Messages not yet written, from `outboxHead` on, and their size in bytes.
    var outbox: [OutgoingMessage] = []
    var outboxHead = 0
    var outboxBytes = 0
    var pushSequence: UInt64 = 0
    var consecutiveBadMessages = 0
    /// The METRICS rendering a client is paging through (kept until the next offset 0, so that
    /// every chunk of a sequence, the empty final one included, comes from one rendering).
    var metricsRendering: [UInt8]?
    /// Called once the outbox is empty or the session closed (shutdown).
    var drainWaiters: [() -> Void] = []
    /// Shutdown or half-close: the socket loop no longer watches the socket, nothing more is read.
    var readingStopped = false
    /// The device whose descriptor the HELLO reply carries (the simulated EPC), kept open here.
    var handedDescriptor: (any SharedDeviceDescriptor)?
    /// One byte more than the largest message, so that a larger one shows as truncated. Kept for
    /// the connection's life (only the pages its largest message touched are resident); each
    /// message is copied out at its own size.
    let receiveBuffer: UnsafeMutableRawBufferPointer

    init(_ session: Session) {
        self.session = session
        peer = session.peer
        receiveBuffer = .allocate(byteCount: session.limits.protocolLimits.maxMessageBytes + 1, alignment: 16)
    }

    deinit { receiveBuffer.deallocate() }

    var core: DaemonCore { session.core }
    var limits: ConnectionLimits { session.limits }
    var fd: Int32 { session.fd }
    var logger: Logger { session.logger }

    // MARK: Reading

    /// Hands the socket to the socket loop. On the queue, as `close` is: a descriptor closed
    /// before it is watched is never watched.
    func startReading() {
        guard phase != .closed else { return }
        let error = core.socketLoop.watch(session)
        if error != 0 { close(reason: "cannot watch the socket: \(ErrnoName.of(error))") }
    }

    /// Messages one turn of the socket loop reads from one connection before serving the others.
    static let packetsPerTurn = 64

    /// Reads queued packets to EAGAIN, or `packetsPerTurn` of them, and writes the replies; true
    /// if nothing is left to read (a packet left unread when the peer hangs up would be lost, so
    /// the loop comes back for the rest).
    func readable() -> Bool {
        let maxFDs = limits.protocolLimits.maxDescriptorsPerMessage
        writesDeferred = true
        defer { writesDeferred = false }
        var drained = true
        var packets = 0
        reading: while phase != .closed, !readingStopped {
            guard packets < Self.packetsPerTurn else {
                drained = false
                break
            }
            let message: SeqpacketIO.Received
            switch SeqpacketIO.receive(fd, into: receiveBuffer, maxDescriptors: maxFDs) {
            case .success(let received): message = received
            case .failure(let failure):
                if failure.errno != EAGAIN && failure.errno != EWOULDBLOCK {
                    close(reason: "receive failed: \(ErrnoName.of(failure.errno))")
                }
                break reading
            }
            let received = MessageDescriptors(message.descriptors, truncated: message.descriptorsTruncated)
            if message.isEndOfStream {
                // SOCK_SEQPACKET cannot tell an empty packet from end of stream: both end what is read.
                received.closeUnclaimed()
                peerStoppedSending()
                break
            }
            if message.dataTruncated {
                received.closeUnclaimed()
                let limit = limits.protocolLimits.maxMessageBytes
                messageError(
                    WireError(
                        .messageTooLarge, "message larger than the limit of \(limit) bytes",
                        detail: .limit(limit: UInt64(limit), actual: UInt64(message.length))))
            } else {
                handleMessage(Array(UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<message.length])), descriptors: received)
            }
            packets += 1
        }
        flushResponses()
        return drained || phase == .closed || readingStopped
    }

    /// Decodes one message and runs its operations in order.
    private func handleMessage(_ bytes: [UInt8], descriptors: MessageDescriptors) {
        defer { descriptors.closeUnclaimed() }
        let operations: [Result<RequestOperation, RequestOperationFailure>]
        do {
            operations = try MessageCodec.decodeRequests(bytes, limits: limits.protocolLimits)
        } catch {
            messageError(error)
            return
        }
        consecutiveBadMessages = 0
        if phase == .awaitingHello, !operations.isEmpty, !startsWithHello(operations) {
            for operation in operations {
                let (id, verb) = operation.idAndVerb
                reject(id: id, verbCode: verb, WireError(.helloRequired, "the first operation of a connection must be HELLO"))
            }
            return
        }
        for operation in operations {
            switch operation {
            case .failure(let failure): reject(id: failure.id, verbCode: failure.verbCode, failure.error)
            case .success(let operation): accept(operation, descriptors: descriptors)
            }
        }
    }

    /// Whether the first operation is a HELLO; one that does not decode gets its own error.
    private func startsWithHello(_ operations: [Result<RequestOperation, RequestOperationFailure>]) -> Bool {
        operations[0].idAndVerb.1 == Verb.hello.rawValue
    }

    /// A message that could not be decoded at all: answered with id 0. A peer that keeps sending
    /// them is disconnected.
    private func messageError(_ error: WireError) {
        core.counters.add(.malformedMessages)
        consecutiveBadMessages += 1
        reject(id: 0, verbCode: 0, error)
        if consecutiveBadMessages >= 32 {
            flushResponses()
            close(reason: "\(consecutiveBadMessages) malformed messages in a row")
        }
    }

    /// End of stream. A peer that closed its socket (POLLHUP: both directions are shut) can be
    /// answered no more, and goes now. One that only shut its sending side (shutdown(SHUT_WR))
    /// still reads: every request it sent before is answered, then the connection closes.
    private func peerStoppedSending() {
        var poller = pollfd(fd: fd, events: 0, revents: 0)
        let hungUp = poll(&poller, 1, 0) > 0 && poller.revents & Int16(POLLHUP) != 0
        guard !hungUp, phase == .ready else { return close(reason: "the peer closed the connection") }
        stopReading()
        flushResponses()
        closeWhenAnswered {}
    }

    /// HELLO arrived: the timeout no longer applies.
    func helloDone() { session.helloTimer.source.cancel() }

    func helloTimedOut() {
        guard phase == .awaitingHello else { return }
        reject(id: 0, verbCode: 0, WireError(.helloRequired, "no HELLO within \(limits.helloTimeout)"))
        flushResponses()
        close(reason: "no HELLO within \(limits.helloTimeout)")
    }

    // MARK: Closing

    /// Ends the connection: sources cancelled (the descriptor closes after them), every enclave
    /// told; those no other connection uses are unregistered by their queues.
    func close(reason: String) {
        guard phase != .closed else { return }
        // Leaving the core may drop the session's last reference: keep it until the end.
        let session = self.session
        phase = .closed
        session.helloTimer.source.cancel()
        writeSource?.cancel()
        writeSource = nil
        core.socketLoop.unwatch(session)
        sourceCancelled()
        core.removeSession(session.id)
        for enclave in enclaves.values { enclave.detach(session) }
        enclaves.removeAll()
        pendingResponses.removeAll()
        pendingPushes.removeAll()
        outbox.removeAll()
        outboxHead = 0
        outboxBytes = 0
        metricsRendering = nil
        logger.debug("connection closed", metadata: ["reason": "\(reason)", "inFlight": "\(inFlight.count)"])
        notifyDrained()
    }

    private func stopReading() {
        readingStopped = true
        core.socketLoop.unwatch(session)
    }

    /// A user of `fd` is gone (the loop's watch, a cancelled write source); the last closes it.
    func sourceCancelled() {
        openSources -= 1
        if openSources == 0 { Glibc.close(fd) }
    }

    func notifyDrained() {
        let waiters = drainWaiters
        drainWaiters.removeAll()
        for waiter in waiters { waiter() }
    }

    /// Shutdown: stops reading, sends SHUTDOWN_NOTICE, and closes once every request read is
    /// answered and written out (`Session.finish`).
    func finish(notice: ShutdownNotice, completion: @escaping @Sendable () -> Void) {
        guard phase != .closed else { return completion() }
        stopReading()
        queuePush(.shutdown(notice))
        flushResponses()
        closeWhenAnswered(completion)
    }

    func closeWhenAnswered(_ completion: @escaping @Sendable () -> Void) {
        guard phase != .closed else { return completion() }
        if inFlight.isEmpty && outboxHead == outbox.count {
            close(reason: "edmmd is shutting down")
            completion()
        } else {
            drainWaiters.append { self.closeWhenAnswered(completion) }
        }
    }
}
