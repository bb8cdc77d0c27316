import EDMMProtocol
import SGXKernel
import SGXSimulator

/// What makes two registrations one enclave, whatever descriptor number or connection brought
/// each: a kernel enclave is its open file (compared with kcmp(2); every descriptor of
/// /dev/sgx_enclave shares one inode, so st_ino says nothing), a simulated one its entry in the
/// machine's enclave table (a dup or a reopened memfd names the same entry).
enum EnclaveIdentity: @unchecked Sendable {
    // @unchecked: KernelEnclaveDevice is an immutable class that only reaches the syscall funnel.
    case kernel(KernelEnclaveDevice)
    case simulated(SimulatedEnclave.Identity)

    init?(_ device: OpenedDevice) {
        if let simulated = device.simulated {
            self = .simulated(simulated.identity)
        } else if let kernel = device.device as? KernelEnclaveDevice {
            self = .kernel(kernel)
        } else {
            return nil
        }
    }

    /// Whether both are the same enclave; throws when the kernel cannot tell (no kcmp).
    func matches(_ other: EnclaveIdentity) throws(SystemCallError) -> Bool {
        switch (self, other) {
        case (.simulated(let a), .simulated(let b)): a == b
        case (.kernel(let a), .kernel(let b)): try a.isSameEnclave(as: b)
        default: false
        }
    }
}

/// How a claim on an enclave's identity went (`EnclaveRegistry.claim`).
enum IdentityClaim: Equatable {
    case claimed
    /// Another registration has it.
    case taken(by: EnclaveHandle, owner: UInt32)
    /// Claimed, but without comparing it to every kernel enclave: kcmp(2) failed.
    case unchecked(SystemCallError)
}
