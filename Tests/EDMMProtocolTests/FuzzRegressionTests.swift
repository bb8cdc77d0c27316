import EDMMProtocol
import Foundation
import Testing

/// Replays the inputs kept by the fuzzer (`FuzzTesting/Regressions/protocol/`, one file per crash
/// found and fixed) and its seed corpus (`FuzzTesting/Corpus/protocol/`) through both decoders,
/// with the oracle of `ProtocolFuzz`: whatever decodes re-encodes to exactly its own bytes, and
/// whatever is rejected gets a precise code.
@Suite struct FuzzRegressionTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzTesting")
    static let regressions = files(in: "Regressions/protocol")
    static let seeds = files(in: "Corpus/protocol")

    /// The tight limits ProtocolFuzz uses besides the defaults.
    static let tightLimits: ProtocolLimits = {
        var limits = ProtocolLimits()
        limits.maxMessageBytes = 512
        limits.maxOperationsPerMessage = 4
        limits.maxRangesPerList = 4
        limits.maxLabelBytes = 8
        limits.maxStringBytes = 32
        return limits
    }()

    static func files(in folder: String) -> [String] {
        let directory = fuzzDirectory.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { "\(folder)/\($0)" }
    }

    static func load(_ file: String) throws -> [UInt8] {
        Array(try Data(contentsOf: fuzzDirectory.appendingPathComponent(file)))
    }

    @Test func theFuzzInputFoldersAreFoundFromTheTestSources() {
        #expect(!Self.regressions.isEmpty)
        #expect(!Self.seeds.isEmpty)
    }

    @Test(arguments: regressions)
    func aSavedFuzzerCrashNowDecodesCanonicallyOrIsRejectedPrecisely(file: String) throws {
        let bytes = try Self.load(file)
        for limits in [ProtocolLimits.default, Self.tightLimits] {
            expectRequestDecodingIsCanonical(bytes, limits: limits)
            expectServerDecodingIsCanonical(bytes, limits: limits)
        }
    }

    @Test(arguments: seeds)
    func everySeedDecodesWithoutErrorAndReencodesToItsOwnBytes(file: String) throws {
        let bytes = try Self.load(file)
        if file.hasPrefix("Corpus/protocol/request-") {
            let ops = try MessageCodec.decodeRequests(bytes, limits: .default).map { try $0.get() }
            #expect(MessageCodec.encodeRequests(ops) == bytes)
        } else {
            #expect(encode(try MessageCodec.decodeServerMessage(bytes, limits: .default)) == bytes)
        }
    }

    @Test func theSeedsCoverEveryVerbEveryReplyShapeEveryErrorDetailAndEveryPush() throws {
        var requested: Set<Verb> = []
        var replies: [ResponseBody] = []
        var detailKinds: Set<Int> = []
        var pushes: Set<PushVerb> = []
        for file in Self.seeds {
            let bytes = try Self.load(file)
            if file.hasPrefix("Corpus/protocol/request-") {
                for op in try MessageCodec.decodeRequests(bytes, limits: .default) { requested.insert(try op.get().request.verb) }
                continue
            }
            switch try MessageCodec.decodeServerMessage(bytes, limits: .default) {
            case .responses(let ops):
                for op in ops {
                    switch op.outcome {
                    case .success(let body): replies.append(body)
                    case .failure(let error): detailKinds.insert(detailKind(error.detail))
                    }
                }
            case .pushes(let ops):
                pushes.formUnion(ops.map(\.push.verb))
            }
        }
        #expect(requested == Set(Verb.allCases))
        #expect(Verb.allCases.filter { verb in !replies.contains { $0.answers(verb) } } == [])
        #expect(detailKinds == [0, 1, 2, 3, 4, 5])
        #expect(pushes == [.reclaimNotice, .shutdownNotice])
    }

    /// Operations that decode re-encode to their own bytes; failures keep their operation's id
    /// and verb and carry an operation-level code; a rejected message gets a message-level code.
    private func expectRequestDecodingIsCanonical(_ bytes: [UInt8], limits: ProtocolLimits) {
        let results: [Result<RequestOperation, RequestOperationFailure>]
        do {
            results = try MessageCodec.decodeRequests(bytes, limits: limits)
        } catch {
            #expect(messageLevelCodes.contains(error.code), "\(error)")
            return
        }
        guard let frame = try? MessageCodec.parseFrame(bytes, limits: limits), frame.operations.count == results.count else {
            Issue.record("decodeRequests accepted a message parseFrame rejects")
            return
        }
        for (raw, result) in zip(frame.operations, results) {
            switch result {
            case .success(let op):
                let original = Array(bytes[raw.body.lowerBound - WireSize.operationHeader..<raw.body.upperBound])
                #expect(MessageCodec.encode(op) == original, "\(op)")
            case .failure(let failure):
                #expect(failure.id == raw.id && failure.verbCode == raw.verbCode)
                #expect([.unknownVerb, .invalidFlags, .malformedOperation].contains(failure.error.code), "\(failure.error)")
            }
        }
    }

    private func expectServerDecodingIsCanonical(_ bytes: [UInt8], limits: ProtocolLimits) {
        do {
            #expect(encode(try MessageCodec.decodeServerMessage(bytes, limits: limits)) == bytes)
        } catch {
            #expect(messageLevelCodes.contains(error.code), "\(error)")
        }
    }
}

private let messageLevelCodes: [WireErrorCode] = [.malformedMessage, .unsupportedVersion, .messageTooLarge, .tooManyOperations]

private func encode(_ message: ServerMessage) -> [UInt8] {
    switch message {
    case .responses(let ops): MessageCodec.encodeResponses(ops)
    case .pushes(let ops): MessageCodec.encodePushes(ops)
    }
}

/// The detail kinds of docs/protocol.md, with a kernel error's result present (2) or absent (5).
private func detailKind(_ detail: WireError.Detail) -> Int {
    switch detail {
    case .none: 0
    case .quota: 1
    case .kernel(_, _, _, let result): result == nil ? 5 : 2
    case .page: 3
    case .limit: 4
    }
}
