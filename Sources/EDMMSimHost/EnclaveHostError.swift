import EDMMClient
import EDMMCore
import EDMMSystem
import SGXSimulator

/// Why a simulated enclave host operation failed.
public enum EnclaveHostError: Error, Equatable, Sendable, CustomStringConvertible {
    case client(EDMMClientError)
    case simulator(SimulatorError)
    /// The daemon is not in simulated mode: there is no simulated EPC to create an enclave in.
    case daemonNotSimulated
    case invalidBlueprint(String)
    /// Building the enclave failed (ADD_PAGES, INIT, mmap), with the errno.
    case build(step: String, errno: Int32)
    /// The daemon's reply was refused before any ENCLU ran for it.
    case refused(HostSafetyViolation)
    /// An ENCLU leaf did not succeed (a mismatch return code or an exception): edmmd did not do
    /// what its reply claimed. A real runtime would stop the enclave here.
    case instructionFailed(leaf: String, offset: UInt64, outcome: InstructionOutcome)
    /// The caller asked to free, trim, restrict, relax or convert pages the enclave does not
    /// hold in a state that allows it.
    case notHeld(operation: String, offset: UInt64, state: String)
    /// The connection to edmmd was lost with the request unanswered, and edmmd may have applied
    /// it before it went away (it did not announce a restart): not sent again, because doing it
    /// twice is not harmless. The pages it named are back in the state they had before.
    case interrupted(operation: String)
    /// edmmd can no longer manage this enclave (it runs another simulated EPC, or answers for
    /// another enclave under its handle).
    case enclaveLost(String)

    public var description: String {
        switch self {
        case .client(let error): "\(error)"
        case .simulator(let error): "simulated EPC: \(error)"
        case .daemonNotSimulated: "edmmd is not running on a simulated EPC (start it with --simulate)"
        case .invalidBlueprint(let what): "invalid enclave blueprint: \(what)"
        case .build(let step, let code): "building the simulated enclave: \(step) failed: \(ErrnoName.described(code))"
        case .refused(let violation): "unsafe reply from edmmd: \(violation)"
        case .instructionFailed(let leaf, let offset, let outcome):
            "\(leaf) at offset 0x\(String(offset, radix: 16)) failed: \(outcome)"
        case .notHeld(let operation, let offset, let state):
            "cannot \(operation) page at offset 0x\(String(offset, radix: 16)): it is \(state)"
        case .interrupted(let operation):
            "\(operation) interrupted: the connection to edmmd was lost before the reply, and edmmd may have applied it"
        case .enclaveLost(let why): "edmmd lost the enclave: \(why)"
        }
    }
}
