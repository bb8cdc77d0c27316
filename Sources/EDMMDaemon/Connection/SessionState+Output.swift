import CEDMMShims
import Dispatch
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import SGXDevice

/// One encoded reply, and the descriptor its message must carry (HELLO in simulated mode).
struct OutgoingOperation {
    var bytes: [UInt8]
    var descriptor: Int32?
}

/// One message ready to write. Descriptors are borrowed (the machine's memfd), never closed here.
struct OutgoingMessage {
    var bytes: [UInt8]
    var descriptors: [Int32]
}

/// The write path: replies ready at the same time are packed into as few messages as the limits
/// allow, written without blocking, and a client whose unwritten replies pass `reply_queue` bytes
/// (one that never reads) is disconnected.
extension SessionState {
    /// Answers an accepted request: it leaves the in-flight set and is counted.
    func answer(
        id: UInt64, verbCode: UInt16, _ outcome: Result<ResponseBody, WireError>, silentOnSuccess: Bool = false, descriptor: Int32? = nil
    ) {
        if let arrival = inFlight.removeValue(forKey: id) {
            core.instruments.recordReply(verbCode: verbCode, nanoseconds: MonotonicInstant.now.nanoseconds &- arrival.nanoseconds)
        }
        let failure: WireErrorCode?
        if case .failure(let error) = outcome { failure = error.code } else { failure = nil }
        core.counters.record(verbCode: verbCode, failure: failure)
        if failure == nil && silentOnSuccess {
            // Nothing to write; a shutdown waiting for this answer checks again.
            if !drainWaiters.isEmpty { notifyDrained() }
            return
        }
        queueResponse(ResponseOperation(id: id, verbCode: verbCode, outcome: outcome), descriptor: descriptor)
    }

    /// Answers an operation that was never accepted (it does not touch the in-flight set: a
    /// duplicate id must not end the original request).
    func reject(id: UInt64, verbCode: UInt16, _ error: WireError) {
        // Verb 0 answers a whole message, which is not a request (counted as messages_malformed).
        if verbCode != 0 { core.counters.record(verbCode: verbCode, failure: error.code) }
        queueResponse(ResponseOperation(id: id, verbCode: verbCode, outcome: .failure(error)), descriptor: nil)
    }

    private func queueResponse(_ response: ResponseOperation, descriptor: Int32?) {
        guard phase != .closed else { return }
        pendingResponses.append(OutgoingOperation(bytes: MessageCodec.encode(response), descriptor: descriptor))
        scheduleFlush()
    }

    func queuePush(_ push: Push) {
        guard phase != .closed else { return }
        pushSequence += 1
        pendingPushes.append(MessageCodec.encode(PushOperation(sequence: pushSequence, push)))
        scheduleFlush()
    }

    /// Packs once the current work on the queue is done, so that replies produced together
    /// (one message's operations, one flush's answers) leave together.
    private func scheduleFlush() {
        guard !flushScheduled, !writesDeferred else { return }
        flushScheduled = true
        session.onQueue { $0.flushResponses() }
    }

    /// Runs `body` (on the queue), then packs and writes what it produced, at once.
    func writingAfter(_ body: () -> Void) {
        let nested = writesDeferred
        writesDeferred = true
        body()
        writesDeferred = nested
        if !nested { flushResponses() }
    }

    /// Packs pending replies and pushes into messages and writes what the socket takes.
    func flushResponses() {
        flushScheduled = false
        guard phase != .closed else { return }
        if !pendingResponses.isEmpty {
            let responses = pendingResponses
            pendingResponses.removeAll()
            // A reply carrying a descriptor travels alone, so the descriptor belongs to it.
            var plain: [[UInt8]] = []
            for response in responses {
                if let descriptor = response.descriptor {
                    pack(plain, kind: .response)
                    plain.removeAll()
                    pack([response.bytes], kind: .response, descriptors: [descriptor])
                } else {
                    plain.append(response.bytes)
                }
            }
            pack(plain, kind: .response)
        }
        if !pendingPushes.isEmpty {
            pack(pendingPushes, kind: .push)
            pendingPushes.removeAll()
        }
        if outboxBytes > limits.replyQueueBytes {
            core.counters.add(.connectionsDropped)
            close(reason: "\(outboxBytes) bytes of replies unread, more than reply_queue (\(limits.replyQueueBytes))")
            return
        }
        writeOutbox()
    }

    private func pack(_ operations: [[UInt8]], kind: MessageKind, descriptors: [Int32] = []) {
        guard !operations.isEmpty else { return }
        let (messages, oversized) = MessageCodec.pack(operations, kind: kind, limits: limits.protocolLimits)
        for message in messages {
            outbox.append(OutgoingMessage(bytes: message, descriptors: descriptors))
            outboxBytes += message.count
        }
        for index in oversized {
            // Never sent: answer its request with an error that fits instead.
            let id = operations[index].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
            let verb = operations[index].withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt16.self) }
            let error = WireError(
                .internalError, "the reply of \(operations[index].count) bytes exceeds the message limit",
                detail: .limit(limit: UInt64(limits.protocolLimits.maxMessageBytes), actual: UInt64(operations[index].count)))
            let message = MessageCodec.encodeResponses([
                ResponseOperation(id: UInt64(littleEndian: id), verbCode: UInt16(littleEndian: verb), outcome: .failure(error))
            ])
            outbox.append(OutgoingMessage(bytes: message, descriptors: []))
            outboxBytes += message.count
        }
    }

    /// Writes queued messages until the socket is full (then waits for a write event) or the
    /// outbox is empty.
    func writeOutbox() {
        while phase != .closed, outboxHead < outbox.count {
            let message = outbox[outboxHead]
            if case .failure(let failure) = SeqpacketIO.send(fd, message.bytes, descriptors: message.descriptors) {
                let error = failure.errno
                if error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS {
                    armWriteSource()
                    return
                }
                close(reason: "send failed: \(ErrnoName.of(error))")
                return
            }
            outboxHead += 1
            outboxBytes -= message.bytes.count
        }
        outbox.removeAll(keepingCapacity: true)
        outboxHead = 0
        disarmWriteSource()
        notifyDrained()
    }

    private func armWriteSource() {
        guard writeSource == nil else { return }
        let source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: session.queue)
        source.setEventHandler { [weak session] in session?.state.value.writeOutbox() }
        // Strong: the descriptor must close even if nothing else holds the session by then.
        source.setCancelHandler { [session] in session.state.value.sourceCancelled() }
        openSources += 1
        writeSource = source
        source.activate()
    }

    private func disarmWriteSource() {
        writeSource?.cancel()
        writeSource = nil
    }
}
