import CEDMMShims
import EDMMCore
import Glibc
import SGXDevice

/// ENCLU leaf numbers the vDSO reports in `run.function`.
public enum ENCLULeaf {
    public static let eenter: UInt32 = 2
    public static let eresume: UInt32 = 3
    public static let eexit: UInt32 = 4
}

/// `struct sgx_enclave_run` minus the reserved bytes.
public struct VDSORun: Equatable, Sendable {
    public var tcs: UInt64
    public var function: UInt32 = 0
    public var exceptionVector: UInt16 = 0
    public var exceptionErrorCode: UInt16 = 0
    public var exceptionAddress: UInt64 = 0
    public var userData: UInt64 = 0

    public init(tcs: UInt64) { self.tcs = tcs }

    /// "no exception": vector, error code and address all zero.
    public var hasNoException: Bool { exceptionVector == 0 && exceptionErrorCode == 0 && exceptionAddress == 0 }

    public mutating func clearException() {
        exceptionVector = 0
        exceptionErrorCode = 0
        exceptionAddress = 0
    }

    mutating func report(_ x: CPUException, function leaf: UInt32) {
        function = leaf
        exceptionVector = x.vector
        exceptionErrorCode = x.errorCode
        exceptionAddress = x.address
    }
}

/// Enclave code run on a TCS: returns nil when it reaches EEXIT, or the exception that made the
/// thread leave with an AEX. After an AEX, ERESUME runs the same code again (the faulting
/// instruction is retried).
public typealias EnclaveCode = @Sendable (EnclaveCPU) -> CPUException?

/// Where a thread that took an AEX continues on ERESUME (process-local, like the thread's
/// registers; the CSSA that counts the AEX lives in the shared TCS).
struct ResumePoint {
    var code: EnclaveCode
}

/// What EENTER or ERESUME found in a TCS.
public struct TCSEntry: Equatable, Sendable {
    /// Where the thread starts: the enclave base plus TCS.OENTRY.
    public var entry: UInt64
    /// The SSA frames: the enclave base plus TCS.OSSA.
    public var ssa: UInt64
    /// CSSA after the leaf: EENTER leaves it unchanged (and hands it to the enclave in RAX),
    /// ERESUME has popped the frame it resumes from, so this is that frame's index.
    public var cssa: UInt32
    public var nssa: UInt32
}

extension EnclaveCPU {
    /// `__vdso_sgx_enter_enclave(..., function, run)` running `code` on TCS `run.tcs`.
    ///
    /// Returns -EINVAL for a leaf other than EENTER/ERESUME, otherwise 0 with `run` filled in as
    /// the vDSO does: `function` EEXIT after a clean exit; after an exception in the enclave
    /// `function` ERESUME (the AEX's RAX) with vector, error code and address; a fault of EENTER
    /// or ERESUME itself reports that leaf. `userHandler` is called on every exit: a result <= 0
    /// is returned, a result > 0 re-enters with that leaf.
    public func vdsoEnterEnclave(
        function: UInt32, run: inout VDSORun, userHandler: ((inout VDSORun) -> Int32)? = nil,
        code: @escaping EnclaveCode
    ) -> Int32 {
        var leaf = function
        while true {
            guard leaf == ENCLULeaf.eenter || leaf == ENCLULeaf.eresume else { return -EINVAL }
            enter(leaf: leaf, run: &run, code: code)
            guard let userHandler else { return 0 }
            let next = userHandler(&run)
            if next <= 0 { return next }
            leaf = UInt32(next)
        }
    }

    private func enter(leaf: UInt32, run: inout VDSORun, code: @escaping EnclaveCode) {
        let tcs = run.tcs
        if case .failure(let x) = enterTCS(tcs, leaf: leaf) {
            run.report(x, function: leaf)
            return
        }
        // ERESUME continues where the AEX left this TCS in this process; with no saved point
        // (e.g. the AEX happened in another process) the thread simply exits.
        var body = code
        if leaf == ENCLULeaf.eresume {
            let saved = enclave.local.withLock { $0.resumePoints[tcs] }
            let nothing: EnclaveCode = { _ in nil }
            body = saved?.code ?? nothing
        }
        let exception = body(self)
        leaveTCS(tcs, aex: exception != nil)
        enclave.local.withLock { $0.resumePoints[tcs] = exception == nil ? nil : ResumePoint(code: body) }
        if let exception {
            run.report(exception, function: ENCLULeaf.eresume)
        } else {
            run.function = ENCLULeaf.eexit
        }
    }

    /// ENCLU[EENTER] or ENCLU[ERESUME] on the TCS at `tcs`, as far as the TCS is concerned (the
    /// registers are the caller's). The SDM's checks: a valid, accepted PT_TCS page (else #PF),
    /// an initialized enclave, an inactive TCS, and CSSA < NSSA for EENTER or CSSA > 0 for
    /// ERESUME (else #GP). Marks the TCS active; ERESUME pops the SSA frame it resumes from.
    public func enterTCS(_ tcs: UInt64, leaf: UInt32) -> Result<TCSEntry, CPUException> {
        guard leaf == ENCLULeaf.eenter || leaf == ENCLULeaf.eresume else { return .failure(.generalProtection) }
        let checked = try? region.withLock { () -> Result<TCSEntry, CPUException> in
            guard tcs % Page.size == 0 else { return .failure(.generalProtection) }
            let page: UInt64
            // EENTER and ERESUME reach the TCS from outside the enclave: a fault here is no AEX.
            switch enclave.translate(tcs, .read, fromHost: true) {
            case .mapped(let e, let p):
                let w = region.word(e)
                guard w.epcmType == SGXPageType.tcs.rawValue, !w.pending, !w.modified else {
                    return .failure(.pageFault(errorCode: AccessKind.read.errorCode(present: true) | PFCode.sgx, address: tcs))
                }
                page = p
            case .exception(let x): return .failure(x)
            case .sigbus(let code): return .failure(.pageFault(errorCode: code, address: tcs))
            }
            guard region.isInitialized, let p = region.contentPointer(page) else { return .failure(.generalProtection) }
            let state = p.load(fromByteOffset: TCSLayout.state, as: UInt64.self)
            var cssa = p.load(fromByteOffset: TCSLayout.cssa, as: UInt32.self)
            let nssa = p.load(fromByteOffset: TCSLayout.nssa, as: UInt32.self)
            guard state == 0 else { return .failure(.generalProtection) }
            if leaf == ENCLULeaf.eenter {
                guard cssa < nssa else { return .failure(.generalProtection) }
            } else {
                guard cssa > 0 else { return .failure(.generalProtection) }
                cssa -= 1
                p.storeBytes(of: cssa, toByteOffset: TCSLayout.cssa, as: UInt32.self)
            }
            p.storeBytes(of: UInt64(1), toByteOffset: TCSLayout.state, as: UInt64.self)
            return .success(
                TCSEntry(
                    entry: enclave.base &+ p.load(fromByteOffset: TCSLayout.oentry, as: UInt64.self),
                    ssa: enclave.base &+ p.load(fromByteOffset: TCSLayout.ossa, as: UInt64.self), cssa: cssa, nssa: nssa))
        }
        let result = checked ?? .failure(.machineCheck)
        if case .success = result { region.count(leaf == ENCLULeaf.eenter ? .eenter : .eresume) }
        return result
    }

    /// The thread on TCS `tcs` leaves the enclave: by EEXIT, or by an AEX (`aex`), which pushes
    /// an SSA frame (CSSA + 1). The TCS becomes inactive. Returns the index of the SSA frame the
    /// AEX saved the thread's state in (0 for EEXIT), or nil when no thread is on that TCS.
    @discardableResult
    public func leaveTCS(_ tcs: UInt64, aex: Bool) -> UInt32? {
        guard tcs % Page.size == 0, tcs >= enclave.base, tcs - enclave.base < enclave.size else { return nil }
        let page = (tcs - enclave.base) >> Page.shift
        let frame = try? region.withLock { () -> UInt32? in
            guard let p = region.contentPointer(page), p.load(fromByteOffset: TCSLayout.state, as: UInt64.self) == 1 else {
                return nil
            }
            p.storeBytes(of: UInt64(0), toByteOffset: TCSLayout.state, as: UInt64.self)
            let cssa = p.load(fromByteOffset: TCSLayout.cssa, as: UInt32.self)
            if aex { p.storeBytes(of: cssa &+ 1, toByteOffset: TCSLayout.cssa, as: UInt32.self) }
            return cssa
        }
        guard let frame = frame ?? nil else { return nil }
        region.count(aex ? .aex : .eexit)
        return aex ? frame : 0
    }

    // MARK: Host-facing accounting

    /// EENTER without a modelled TCS (host-facing API): counted only.
    public func enter() { region.count(.eenter) }
    /// EEXIT (host-facing API): counted only.
    public func exit() { region.count(.eexit) }
    /// An exception the enclave took reaching the host (AEX) and the host resuming the enclave
    /// after handling it (ERESUME), for code run through the host-facing API: counted only.
    public func resumeAfterException() {
        region.count(.aex)
        region.count(.eresume)
    }

    /// An OCALL: EEXIT, the host's work, EENTER.
    public func ocall<T, E: Error>(_ hostWork: () throws(E) -> T) throws(E) -> T {
        region.count(.ocalls)
        region.count(.eexit)
        defer { region.count(.eenter) }
        return try hostWork()
    }
}
