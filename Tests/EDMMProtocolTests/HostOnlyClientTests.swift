import EDMMProtocol
import Testing

/// REGISTER's options for clients that see only the host side, and errors of a newer daemon
/// (docs/protocol.md, "Clients that see only the host side" and "Versioning").
@Suite struct HostOnlyClientTests {
    private let register = Request.register(RegisterRequest(base: 1 << 32, size: 1 << 20, label: "sdk"))

    @Test func registerCarriesImplicitCommitKernelErrorsAndFreshOnly() throws {
        let flags: RequestFlags = [.implicitCommit, .kernelErrors, .freshOnly]
        let bytes = MessageCodec.encodeRequests([RequestOperation(id: 1, flags: flags, register)])
        let ops = try MessageCodec.decodeRequests(bytes, limits: .default)
        guard case .success(let op) = ops.first else {
            Issue.record("REGISTER with its options was refused: \(ops)")
            return
        }
        #expect(op.flags == flags)
    }

    @Test(arguments: [RequestFlags.implicitCommit, .kernelErrors, .freshOnly])
    func theRegistrationOptionsAreInvalidFlagsOnAnyOtherVerb(_ flag: RequestFlags) throws {
        let trim = Request.trim(RangeRequest(enclave: 1, range: WireRange(offset: 0, length: 4096)))
        let ops = try MessageCodec.decodeRequests(
            MessageCodec.encodeRequests([RequestOperation(id: 1, flags: flag, trim)]), limits: .default)
        guard case .failure(let failure) = ops.first else {
            Issue.record("TRIM with a REGISTER option was accepted")
            return
        }
        #expect(failure.error.code == .invalidFlags)
    }

    @Test func anUnknownErrorCodeDecodesAsAnUnknownErrorWithItsCodeAndDetail() throws {
        let error = WireError(
            WireErrorCode(rawValue: 200), "a newer daemon's error",
            detail: .kernel(ioctl: .removePages, errno: 1, countBytes: 4096, result: nil))
        let bytes = MessageCodec.encodeResponses([ResponseOperation(id: 7, verb: .trimAccepted, outcome: .failure(error))])
        guard case .responses(let ops) = try MessageCodec.decodeServerMessage(bytes, limits: .default), let op = ops.first,
            case .failure(let decoded) = op.outcome
        else {
            Issue.record("the error did not decode as a failure")
            return
        }
        #expect(decoded == error)
        #expect(!decoded.code.isKnown)
        #expect("\(decoded.code)" == "unknown(200)")
        #expect(WireErrorCode.kernelError.isKnown && "\(WireErrorCode.kernelError)" == "kernel-error")
    }

    @Test func everyKnownCodeHasItsDocumentedName() {
        #expect(WireErrorCode.allCases.map(\.rawValue) == Array(1...25))
        #expect(WireErrorCode.allCases.allSatisfy { $0.isKnown && !"\($0)".hasPrefix("unknown(") })
    }
}
