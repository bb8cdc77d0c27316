import CEDMMShims
import Dispatch
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import Logging
import SGXDevice
import Synchronization

/// One client connection.
///
/// Concurrency: every mutable property belongs to `queue`, this connection's serial queue. The
/// read source, the write source and the HELLO timer fire there; enclaves hand their answers back
/// through `deliver`, `push` and `forget`, which hop onto it. The socket descriptor is closed only
/// after every source on it has been cancelled (their cancel handlers count down `openSources`).
final class Session: @unchecked Sendable {
    let id: UInt64
    let peer: PeerCredentials
    let limits: ConnectionLimits
    let queue: DispatchQueue
    let core: DaemonCore
    let fd: Int32
    private let readSource: any DispatchSourceRead
    /// The thread running `submitInline`, if any (see there); 0 otherwise.
    let inlineDeliveryThread = Atomic<UInt>(0)
    /// Deliveries queued with `queue.async` and not yet settled.
    let deliveriesInTransit = Atomic<Int>(0)
    private let helloTimer: any DispatchSourceTimer

    // MARK: Queue-confined state

    enum Phase { case awaitingHello, ready, closed }
    var phase = Phase.awaitingHello
    /// Requests accepted and not yet answered: id -> arrival (for the latency histogram).
    var inFlight: [UInt64: MonotonicInstant] = [:]
    /// Enclaves this connection registered or attached.
    var enclaves: [EnclaveHandle: EnclaveContext] = [:]
    /// REGISTER/ATTACH requests on their way: they hold a slot of the enclave limit.
    var pendingAttachments = 0
    var writeSource: (any DispatchSourceWrite)?
    /// Sources on `fd` not yet cancelled; the descriptor closes when this reaches zero.
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
    var drainWaiters: [@Sendable () -> Void] = []
    /// Shutdown: the read source is suspended, nothing more is read.
    var readingStopped = false
    /// The device whose descriptor the HELLO reply carries (the simulated EPC), kept open here.
    var handedDescriptor: (any SharedDeviceDescriptor)?
    /// One byte more than the largest message, so that a larger one shows as truncated. Kept for
    /// the connection's life (only the pages its largest message touched are resident); each
    /// message is copied out at its own size.
    private let receiveBuffer: UnsafeMutableRawBufferPointer

    init(id: UInt64, fd: Int32, peer: PeerCredentials, limits: ConnectionLimits, core: DaemonCore) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.limits = limits
        self.core = core
        queue = DispatchQueue(label: "edmmd.session.\(id)")
        readSource = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        helloTimer = DispatchSource.makeTimerSource(queue: queue)
        receiveBuffer = .allocate(byteCount: limits.protocolLimits.maxMessageBytes + 1, alignment: 16)
    }

    deinit { receiveBuffer.deallocate() }

    var logger: Logger {
        var logger = core.logger
        logger[metadataKey: "session"] = "\(id)"
        return logger
    }

    /// Starts reading (any queue).
    func start() {
        readSource.setEventHandler { @Sendable [weak self] in self?.readable() }
        // Strong: the descriptor must close even if nothing else holds the session by then.
        readSource.setCancelHandler { @Sendable in self.sourceCancelled() }
        helloTimer.setEventHandler { @Sendable [weak self] in self?.helloTimedOut() }
        helloTimer.schedule(deadline: .now() + .microseconds(Int(limits.helloTimeout.microsecondsClamped)))
        helloTimer.activate()
        readSource.activate()
    }

    // MARK: Reading

    /// Reads every queued packet (to EAGAIN): a packet left unread when the peer hangs up would be
    /// lost. Replies are flushed every 64 packets so a fast sender cannot grow them unbounded.
    private func readable() {
        dispatchPrecondition(condition: .onQueue(queue))
        let maxFDs = limits.protocolLimits.maxDescriptorsPerMessage
        var packets = 0
        writesDeferred = true
        defer { writesDeferred = false }
        reading: while phase != .closed {
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
            if packets % 64 == 0 { flushResponses() }
        }
        flushResponses()
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
        if !readingStopped {
            readingStopped = true
            readSource.suspend()
        }
        flushResponses()
        closeWhenAnswered {}
    }

    /// HELLO arrived: the timeout no longer applies.
    func helloDone() { helloTimer.cancel() }

    private func helloTimedOut() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard phase == .awaitingHello else { return }
        reject(id: 0, verbCode: 0, WireError(.helloRequired, "no HELLO within \(limits.helloTimeout)"))
        flushResponses()
        close(reason: "no HELLO within \(limits.helloTimeout)")
    }

    // MARK: Closing

    /// Ends the connection: sources cancelled (the descriptor closes after them), every enclave
    /// told; those no other connection uses are unregistered by their queues.
    func close(reason: String) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard phase != .closed else { return }
        phase = .closed
        helloTimer.cancel()
        writeSource?.cancel()
        writeSource = nil
        if readingStopped {
            // A suspended source never runs its cancel handler, which closes the descriptor.
            readingStopped = false
            readSource.resume()
        }
        readSource.cancel()
        core.removeSession(id)
        for enclave in enclaves.values { enclave.detach(self) }
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

    /// A source on `fd` finished cancelling; the last one closes the descriptor.
    func sourceCancelled() {
        dispatchPrecondition(condition: .onQueue(queue))
        openSources -= 1
        if openSources == 0 { Glibc.close(fd) }
    }

    func notifyDrained() {
        let waiters = drainWaiters
        drainWaiters.removeAll()
        for waiter in waiters { waiter() }
    }

    // MARK: Shutdown (any queue)

    /// Stops reading, sends SHUTDOWN_NOTICE, and closes once every request it read is answered
    /// and written out; `completion` runs when done. So a request the client got no answer for
    /// was never applied (docs/protocol.md, SHUTDOWN_NOTICE).
    func finish(notice: ShutdownNotice, completion: @escaping @Sendable () -> Void) {
        queue.async {
            guard self.phase != .closed else { return completion() }
            if !self.readingStopped {
                self.readingStopped = true
                self.readSource.suspend()
            }
            self.pushOnQueue(.shutdown(notice))
            self.flushResponses()
            self.closeWhenAnswered(completion)
        }
    }

    private func closeWhenAnswered(_ completion: @escaping @Sendable () -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard phase != .closed else { return completion() }
        if inFlight.isEmpty && outboxHead == outbox.count {
            close(reason: "edmmd is shutting down")
            completion()
        } else {
            drainWaiters.append { self.closeWhenAnswered(completion) }
        }
    }

    /// Closes now, whatever is still queued (shutdown deadline).
    func abort(reason: String) {
        queue.async { self.close(reason: reason) }
    }
}

/// The descriptors that arrived with one message. An operation that uses one claims it by index
/// and owns it from then on; the rest are closed when the message has been handled, so none ever
/// leaks and none is closed twice.
final class MessageDescriptors {
    private var fds: [Int32]
    private var claimed: [Bool]
    /// More descriptors were sent than the limit: all of them are refused.
    let truncated: Bool

    init(_ fds: [Int32], truncated: Bool) {
        self.fds = fds
        self.truncated = truncated
        claimed = Array(repeating: false, count: fds.count)
    }

    var count: Int { fds.count }

    /// The descriptor at `index`, once, with its ownership; nil if there is none or it was
    /// already claimed.
    func claim(_ index: Int) -> OwnedDescriptor? {
        guard index < fds.count, !claimed[index] else { return nil }
        claimed[index] = true
        return OwnedDescriptor(fds[index])
    }

    func wasClaimed(_ index: Int) -> Bool { index < claimed.count && claimed[index] }

    /// Closes every descriptor no operation claimed.
    func closeUnclaimed() {
        for (index, fd) in fds.enumerated() where !claimed[index] { Glibc.close(fd) }
        fds.removeAll()
    }
}

extension Result where Success == RequestOperation, Failure == RequestOperationFailure {
    var idAndVerb: (UInt64, UInt16) {
        switch self {
        case .success(let operation): (operation.id, operation.request.verb.rawValue)
        case .failure(let failure): (failure.id, failure.verbCode)
        }
    }
}
