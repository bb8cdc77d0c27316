import EDMMCore
import PropertyBased
import Testing

@testable import EDMMProtocol

@Suite struct RoundTripTests {
    @Test func everyRequestVerbSurvivesEncodeAndDecode() throws {
        let ops = everyRequest.enumerated().map { RequestOperation(id: UInt64($0.offset) * 1_000_003, $0.element) }
        let decoded = try MessageCodec.decodeRequests(MessageCodec.encodeRequests(ops), limits: .default)
        #expect(decoded.count == ops.count)
        for (op, result) in zip(ops, decoded) {
            #expect(try result.get() == op)
        }
        #expect(Set(everyRequest.map(\.verb)) == Set(Verb.allCases))
    }

    @Test func everyResponseAndErrorDetailSurvivesEncodeAndDecode() throws {
        let decoded = try MessageCodec.decodeServerMessage(MessageCodec.encodeResponses(everyResponse), limits: .default)
        #expect(decoded == .responses(everyResponse))
    }

    @Test func pushesSurviveEncodeAndDecode() throws {
        let pushes = [
            PushOperation(
                sequence: 1,
                .reclaim(ReclaimNotice(enclave: 4, reason: .epcPressure, ranges: [WireRange(offset: 0x1000, length: 0x3000)]))),
            PushOperation(sequence: 2, .shutdown(ShutdownNotice(restarting: true, message: "systemctl restart"))),
        ]
        #expect(try MessageCodec.decodeServerMessage(MessageCodec.encodePushes(pushes), limits: .default) == .pushes(pushes))
    }

    @Test func noReplyFlagSurvivesOnFree() throws {
        let op = RequestOperation(id: 5, flags: .noReply, .free(RangeRequest(enclave: 1, range: WireRange(offset: 0, length: 4096))))
        #expect(try MessageCodec.decodeRequests(MessageCodec.encodeRequests([op]), limits: .default)[0].get() == op)
    }

    @Test func randomAllocateAndRangeRequestsRoundTrip() async {
        let gen = Gen.uint64(in: 0...UInt64.max).array(of: 5...5)
        await propertyCheck(count: 300, input: gen, Gen.uint8(in: 0...7), Gen.bool) { fields, perms, growth in
            let ops = [
                RequestOperation(
                    id: fields[0],
                    .allocate(
                        AllocateRequest(
                            enclave: fields[1], offset: fields[2], length: fields[3], permissions: PagePermissions(rawValue: perms),
                            allowGrowth: growth))),
                RequestOperation(
                    id: fields[4],
                    .restrict(
                        PermissionsRequest(
                            enclave: fields[0], range: WireRange(offset: fields[2], length: fields[1]),
                            permissions: PagePermissions(rawValue: perms)))),
            ]
            let decoded = try? MessageCodec.decodeRequests(MessageCodec.encodeRequests(ops), limits: .default).map { try $0.get() }
            #expect(decoded == ops)
        }
    }

    @Test func packSplitsOperationsAtTheSizeAndCountLimits() throws {
        var limits = ProtocolLimits()
        limits.maxMessageBytes = 200
        limits.maxOperationsPerMessage = 3
        let ops = (0..<10).map {
            MessageCodec.encode(ResponseOperation(id: UInt64($0), verb: .free, outcome: .success(.done(DoneReply(pages: 1)))))
        }
        let (messages, oversized) = MessageCodec.pack(ops, kind: .response, limits: limits)
        #expect(oversized.isEmpty)
        #expect(messages.allSatisfy { $0.count <= 200 })
        var ids: [UInt64] = []
        for message in messages {
            guard case .responses(let responses) = try MessageCodec.decodeServerMessage(message, limits: limits) else {
                Issue.record("not a response message")
                continue
            }
            #expect(responses.count <= 3)
            ids += responses.map(\.id)
        }
        #expect(ids == Array(0..<10))
    }

    @Test func packReportsAnOperationLargerThanAMessage() {
        var limits = ProtocolLimits()
        limits.maxMessageBytes = 64
        let big = MessageCodec.encode(
            ResponseOperation(id: 1, verb: .reload, outcome: .success(.reload(ReloadReply(summary: String(repeating: "x", count: 100))))))
        let small = MessageCodec.encode(ResponseOperation(id: 2, verb: .free, outcome: .success(.done(DoneReply(pages: 1)))))
        let (messages, oversized) = MessageCodec.pack([small, big], kind: .response, limits: limits)
        #expect(oversized == [1])
        #expect(messages.count == 1)
    }
}
