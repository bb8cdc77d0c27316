/// An exception an enclave instruction or access raised, as the vDSO reports it.
public enum CPUException: Error, Equatable, Sendable, CustomStringConvertible {
    /// #GP(0): vector 13, error code 0, no address.
    case generalProtection
    /// #PF: vector 14 with the hardware error code and the page-granular faulting address.
    case pageFault(errorCode: UInt16, address: UInt64)
    /// #MC (vector 18): the shared simulated state is unusable (its robust mutex was corrupted
    /// by another process). Never produced by a well-behaved host.
    case machineCheck

    public var vector: UInt16 {
        switch self {
        case .generalProtection: 13
        case .pageFault: 14
        case .machineCheck: 18
        }
    }

    public var errorCode: UInt16 {
        if case .pageFault(let code, _) = self { return code }
        return 0
    }

    public var address: UInt64 {
        if case .pageFault(_, let address) = self { return address }
        return 0
    }

    /// A #PF with neither the P nor the SGX bit: no page was mapped there, and the kernel could
    /// not map or add one when the access faulted (SIGBUS from the driver, reported by the vDSO).
    /// A runtime may resume and retry: the next fault tries again.
    public var isNotPresentPageFault: Bool {
        if case .pageFault(let code, _) = self { return code & (PFCode.present | PFCode.sgx) == 0 }
        return false
    }

    public var description: String {
        switch self {
        case .generalProtection: "#GP(0)"
        case .machineCheck: "#MC"
        case .pageFault(let code, let address): "#PF(0x\(String(code, radix: 16)), 0x\(String(address, radix: 16)))"
        }
    }
}

/// #PF error-code bits (reference §1.3).
enum PFCode {
    static let present: UInt16 = 0x1
    static let write: UInt16 = 0x2
    static let user: UInt16 = 0x4
    static let fetch: UInt16 = 0x10
    static let sgx: UInt16 = 0x8000
}

/// The result of one ENCLU leaf: RAX (0 or an SGX error code such as 19) or an exception.
public enum InstructionOutcome: Equatable, Sendable, CustomStringConvertible {
    case returned(UInt64)
    case exception(CPUException)

    public static let success = InstructionOutcome.returned(0)

    public var description: String {
        switch self {
        case .returned(let rax): "ret \(rax)"
        case .exception(let e): "\(e)"
        }
    }
}

/// What a non-enclave (host) access to the enclave mapping ends in.
public enum UntrustedAccessOutcome: Equatable, Sendable {
    /// The access reached the EPC page: abort-page semantics (reads all ones, writes dropped).
    case abortPage
    /// No VMA, or the VMA forbids the access.
    case sigsegv
    /// The driver's fault handler refused (e.g. EAUG before EINIT, or a hole without SGX2).
    case sigbus
}

enum AccessKind {
    case read, write, fetch

    func errorCode(present: Bool) -> UInt16 {
        var code = PFCode.user | (present ? PFCode.present : 0)
        switch self {
        case .read: break
        case .write: code |= PFCode.write
        case .fetch: code |= PFCode.fetch
        }
        return code
    }
}
