import EDMMCore
import PropertyBased
import Testing

@testable import EDMMProtocol

@Suite struct HostileInputTests {
    private func frameError(_ bytes: [UInt8], limits: ProtocolLimits = .default) -> WireErrorCode? {
        do {
            _ = try MessageCodec.decodeRequests(bytes, limits: limits)
            return nil
        } catch {
            return error.code
        }
    }

    private func operationError(_ bytes: [UInt8], index: Int = 0) throws -> WireErrorCode? {
        let ops = try MessageCodec.decodeRequests(bytes, limits: .default)
        guard case .failure(let failure) = ops[index] else { return nil }
        return failure.error.code
    }

    @Test func anEmptyPacketIsMalformed() {
        #expect(frameError([]) == .malformedMessage)
    }

    @Test func aTruncatedHeaderIsMalformed() {
        #expect(frameError(Array(requestMessage([.status]).prefix(10))) == .malformedMessage)
    }

    @Test func aWrongMagicIsMalformed() {
        var bytes = requestMessage([.status])
        bytes[0] ^= 0xFF
        #expect(frameError(bytes) == .malformedMessage)
    }

    @Test func anUnknownVersionIsRejectedWithUnsupportedVersion() {
        var bytes = requestMessage([.status])
        poke(&bytes, at: 4, UInt16(2))
        #expect(frameError(bytes) == .unsupportedVersion)
    }

    @Test func aLengthFieldThatDisagreesWithThePacketIsMalformed() {
        var bytes = requestMessage([.status])
        poke(&bytes, at: 8, UInt32(bytes.count + 1))
        #expect(frameError(bytes) == .malformedMessage)
        #expect(frameError(requestMessage([.status]) + [0]) == .malformedMessage)
    }

    @Test func aMessageOverTheSizeLimitIsRejectedWithTheNumbers() throws {
        var limits = ProtocolLimits()
        limits.maxMessageBytes = 100
        let bytes = requestMessage(Array(repeating: .status, count: 10))
        do {
            _ = try MessageCodec.decodeRequests(bytes, limits: limits)
            Issue.record("accepted an oversized message")
        } catch {
            #expect(error.code == .messageTooLarge)
            #expect(error.detail == .limit(limit: 100, actual: UInt64(bytes.count)))
        }
    }

    @Test func tooManyOperationsInOneMessageAreRejected() {
        var limits = ProtocolLimits()
        limits.maxOperationsPerMessage = 4
        #expect(frameError(requestMessage(Array(repeating: .status, count: 5)), limits: limits) == .tooManyOperations)
    }

    @Test func aMessageWithZeroOperationsIsMalformed() {
        #expect(frameError(MessageCodec.frame(.request, operations: [])) == .malformedMessage)
    }

    @Test func anOperationBodyThatOverrunsTheMessageIsMalformed() {
        var bytes = requestMessage([.sync(1)])
        poke(&bytes, at: WireSize.messageHeader + 4, UInt32(1000))
        #expect(frameError(bytes) == .malformedMessage)
    }

    @Test func aResponseMessageSentAsARequestIsMalformed() {
        let bytes = MessageCodec.encodeResponses([ResponseOperation(id: 1, verb: .free, outcome: .success(.done(DoneReply(pages: 1))))])
        #expect(frameError(bytes) == .malformedMessage)
    }

    @Test func anUnknownVerbFailsOnlyItsOwnOperation() throws {
        var bytes = requestMessage([.status, .sync(3), .reload])
        let second = WireSize.messageHeader + WireSize.operationHeader
        poke(&bytes, at: second, UInt16(999))
        let ops = try MessageCodec.decodeRequests(bytes, limits: .default)
        #expect(try ops[0].get() == RequestOperation(id: 1, .status))
        guard case .failure(let failure) = ops[1] else {
            Issue.record("unknown verb decoded")
            return
        }
        #expect(failure.error.code == .unknownVerb)
        #expect(failure.id == 2)
        #expect(failure.verbCode == 999)
        #expect(try ops[2].get() == RequestOperation(id: 3, .reload))
    }

    @Test func aTruncatedBodyIsAMalformedOperation() throws {
        let op = MessageCodec.encode(RequestOperation(id: 1, .sync(3)))
        var truncated = Array(op.prefix(op.count - 3))
        poke(&truncated, at: 4, UInt32(truncated.count - WireSize.operationHeader))
        #expect(try operationError(MessageCodec.frame(.request, operations: [truncated])) == .malformedOperation)
    }

    @Test func trailingBytesInABodyAreAMalformedOperation() throws {
        var op = MessageCodec.encode(RequestOperation(id: 1, .sync(3)))
        op += [0, 0]
        poke(&op, at: 4, UInt32(op.count - WireSize.operationHeader))
        #expect(try operationError(MessageCodec.frame(.request, operations: [op])) == .malformedOperation)
    }

    @Test func permissionBitsBeyondRWXAreAMalformedOperation() throws {
        var op = MessageCodec.encode(
            RequestOperation(
                id: 1, .restrict(PermissionsRequest(enclave: 1, range: WireRange(offset: 0, length: 4096), permissions: .read))))
        op[op.count - 1] = 0x8
        #expect(try operationError(MessageCodec.frame(.request, operations: [op])) == .malformedOperation)
    }

    @Test func aListCountLargerThanTheMessageIsAMalformedOperationNotAnAllocation() throws {
        let register = Request.register(RegisterRequest(base: 0, size: 1 << 20, label: "x", adopted: []))
        var op = MessageCodec.encode(RequestOperation(id: 1, register))
        poke(&op, at: op.count - 4, UInt32.max)
        #expect(try operationError(MessageCodec.frame(.request, operations: [op])) == .malformedOperation)
    }

    @Test func aLabelLongerThanTheLimitIsAMalformedOperation() throws {
        let bytes = requestMessage([.register(RegisterRequest(base: 0, size: 1 << 20, label: String(repeating: "a", count: 65)))])
        #expect(try operationError(bytes) == .malformedOperation)
    }

    @Test func aLabelThatIsNotUTF8IsAMalformedOperation() throws {
        var op = MessageCodec.encode(RequestOperation(id: 1, .register(RegisterRequest(base: 0, size: 1 << 20, label: "ab"))))
        let labelStart = WireSize.operationHeader + 1 + 16 + 2
        op[labelStart] = 0xFF
        #expect(try operationError(MessageCodec.frame(.request, operations: [op])) == .malformedOperation)
    }

    @Test func noReplyIsRefusedOnVerbsThatMustAnswer() throws {
        let bytes = MessageCodec.encodeRequests([
            RequestOperation(id: 1, flags: .noReply, .trim(RangeRequest(enclave: 1, range: WireRange(offset: 0, length: 4096))))
        ])
        #expect(try operationError(bytes) == .invalidFlags)
    }

    @Test func unknownFlagBitsAreRefused() throws {
        var bytes = requestMessage([.status])
        poke(&bytes, at: WireSize.messageHeader + 2, UInt16(0x80))
        #expect(try operationError(bytes) == .invalidFlags)
    }

    @Test func randomGarbageNeverTrapsTheDecoder() async {
        await propertyCheck(count: 2_000, input: Gen.uint8(in: 0...255).array(of: 0...300)) { bytes in
            _ = try? MessageCodec.decodeRequests(bytes, limits: .default)
            _ = try? MessageCodec.decodeServerMessage(bytes, limits: .default)
        }
    }

    @Test func everyTruncationOfAValidMessageIsRejected() throws {
        let bytes = requestMessage(everyRequest)
        for length in 0..<bytes.count {
            #expect(frameError(Array(bytes.prefix(length))) == .malformedMessage, "prefix of \(length) bytes")
        }
    }

    @Test func randomSingleByteCorruptionsNeverTrapAndNeverDecodeToADifferentOperationCount() async {
        let bytes = requestMessage(everyRequest)
        await propertyCheck(count: 2_000, input: Gen.int(in: 0..<bytes.count), Gen.uint8(in: 0...255)) { index, value in
            var corrupted = bytes
            corrupted[index] = value
            if let ops = try? MessageCodec.decodeRequests(corrupted, limits: .default) {
                #expect(ops.count == everyRequest.count)
            }
        }
    }
}
