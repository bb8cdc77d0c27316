import EDMMSystem
import Glibc
import SGXDevice

/// The selftests' assertion vocabulary, on top of `Checks`.
extension Checks {
    typealias Call = (rc: Int32, run: VDSORun, op: EnclaveOp)

    /// `EXPECT_EEXIT` plus "no exception" and a zero vDSO return.
    func expectCleanExit(_ label: String, _ call: Call) {
        expect("\(label): vDSO rc", call.rc, 0)
        expect("\(label): function", call.run.function, ENCLULeaf.eexit)
        expect("\(label): exception vector", call.run.exceptionVector, 0)
        expect("\(label): exception error code", hex(call.run.exceptionErrorCode), "0x0")
        expect("\(label): exception address", hex(call.run.exceptionAddress), "0x0")
    }

    /// As `expectCleanExit`, stopping the case on a mismatch (the selftests' ASSERT).
    func requireCleanExit(_ label: String, _ call: Call) throws {
        expectCleanExit(label, call)
        if !(call.rc == 0 && call.run.function == ENCLULeaf.eexit && call.run.hasNoException) {
            throw Stop(reason: "\(label) did not exit cleanly")
        }
    }

    /// An exception reported by the vDSO.
    func expectException(
        _ label: String, _ call: Call, function: UInt32 = ENCLULeaf.eresume, vector: UInt16, errorCode: UInt16? = nil,
        address: UInt64? = nil
    ) {
        expect("\(label): vDSO rc", call.rc, 0)
        expect("\(label): function", call.run.function, function)
        expect("\(label): exception vector", call.run.exceptionVector, vector)
        if let errorCode { expect("\(label): exception error code", hex(call.run.exceptionErrorCode), hex(errorCode)) }
        if let address { expect("\(label): exception address", hex(call.run.exceptionAddress), hex(address)) }
    }

    /// An ioctl's rc/errno (0 = success), `count` and optionally `result`.
    func expectIoctl(
        _ label: String, errno: Int32, expected: Int32, count: UInt64, _ expectedCount: UInt64,
        result: UInt64? = nil, _ expectedResult: UInt64? = nil
    ) {
        expect("\(label): rc", errno == 0 ? 0 : -1, expected == 0 ? 0 : -1)
        expect("\(label): errno", errnoName(errno), errnoName(expected))
        expect("\(label): count", count, expectedCount)
        if let result, let expectedResult { expect("\(label): result", result, expectedResult) }
    }

    /// The SGX2 probe: EINVAL means the kernel and CPU support SGX2 (anything else would skip).
    func requireSGX2(_ t: SelftestEnclave) throws {
        try require("SGX2 probe errno", errnoName(t.probeErrno()), "EINVAL")
    }
}

func errnoName(_ code: Int32) -> String { code == 0 ? "0" : ErrnoName.of(code) }
func hex<T: BinaryInteger>(_ v: T) -> String { "0x" + String(v, radix: 16) }
