import CEDMMShims
import EDMMCore
import SGXDevice

/// The simulated CPU running inside one enclave, in this process: enclave memory accesses and
/// the ENCLU leaves EACCEPT, EACCEPTCOPY and EMODPE, each with its SDM checks, and each access
/// going through the MMU and the kernel's fault path (EAUG on first touch of a hole, then a
/// transparent retry). Every call runs atomically under `encl->lock`, which stands in for the
/// EPCM's per-page interlocks: an ENCLU leaf never meets another SGX instruction on its page
/// (on hardware the loser of such a race gets #GP, or SGX_EPC_PAGE_CONFLICT on the ENCLS side,
/// which the simulator only injects; see `SimulatorFaults`).
///
/// Get one with `SimulatedEnclave.cpu()`; it needs the page-contents mapping.
public final class EnclaveCPU: @unchecked Sendable {
    public let enclave: SimulatedEnclave
    let region: EnclaveRegion

    init(enclave: SimulatedEnclave) {
        self.enclave = enclave
        region = enclave.region
    }

    // MARK: Memory

    /// Reads the u64 at `address` (8-byte aligned within a page).
    public func read(_ address: UInt64) -> Result<UInt64, CPUException> {
        locked {
            switch access(address, .read) {
            case .success(let p): .success(p.load(fromByteOffset: Int(address & 0xFF8), as: UInt64.self))
            case .failure(let e): .failure(e)
            }
        }
    }

    /// Writes the u64 at `address` (8-byte aligned within a page).
    public func write(_ address: UInt64, _ value: UInt64) -> Result<Void, CPUException> {
        locked {
            switch access(address, .write) {
            case .success(let p):
                p.storeBytes(of: value, toByteOffset: Int(address & 0xFF8), as: UInt64.self)
                return .success(())
            case .failure(let e): return .failure(e)
            }
        }
    }

    /// An instruction fetch from `address` (executing code there).
    public func execute(_ address: UInt64) -> Result<Void, CPUException> {
        locked { access(address, .fetch).map { _ in () } }
    }

    /// The access `kind` (`.read`, `.write` or `.execute`) enclave code makes at `address`, with
    /// every check of a real one but no data moved. Returns what the page lets this process do
    /// now (its VMA's protection and its EPCM permissions in common): a harness that runs enclave
    /// code natively may grant the page exactly that until the next change (its "TLB" entry).
    public func probe(_ address: UInt64, _ kind: PagePermissions) -> Result<PagePermissions, CPUException> {
        let access: AccessKind = kind.contains(.execute) ? .fetch : kind.contains(.write) ? .write : .read
        return locked {
            self.access(address, access).map { _ in
                let vma = enclave.local.withLock { $0.space.vma(containing: address)?.prot } ?? .none
                let page = (address - enclave.base) >> Page.shift
                return vma.intersection(region.peek(page).epcmPermissions)
            }
        }
    }

    /// A data access as the enclave makes it: MMU and fault path, then the EPCM check (only an
    /// accepted PT_REG page with the R/W/X bit for the access; else #PF with the SGX bit).
    private func access(_ address: UInt64, _ kind: AccessKind) -> Result<UnsafeMutableRawPointer, CPUException> {
        region.count(kind == .write ? .writes : .reads)
        let (e, page): (UnsafeMutablePointer<edmm_page_entry>, UInt64)
        switch enclave.translate(address, kind) {
        case .mapped(let entry, let p): (e, page) = (entry, p)
        case .exception(let x): return .failure(x)
        case .sigbus(let code): return .failure(.pageFault(errorCode: code, address: address & ~0xFFF))
        }
        let w = region.word(e)
        let needed: PagePermissions = kind == .read ? .read : kind == .write ? .write : .execute
        guard w.epcmType == SGXPageType.reg.rawValue, !w.pending, !w.modified, w.epcmPermissions.contains(needed) else {
            region.count(.sgxFaults)
            return .failure(.pageFault(errorCode: kind.errorCode(present: true) | PFCode.sgx, address: address & ~0xFFF))
        }
        enclave.machine.touch(slot: e.pointee.f.slot)
        // Contents are mapped: `cpu()` refuses to exist otherwise.
        return .success(region.contentPointer(page)!)
    }

    // MARK: ENCLU leaves

    /// ENCLU[EACCEPT] (reference §9.2).
    public func eaccept(_ address: UInt64, flags: SecInfoFlags) -> InstructionOutcome {
        locked {
            region.count(.eaccept)
            let s = flags
            guard s.rawValue & SecInfoFlags.reservedMask == 0, inELRANGE(address) else {
                return .exception(.generalProtection)
            }
            let e: UnsafeMutablePointer<edmm_page_entry>
            let page: UInt64
            switch operand(address) {
            case .success(let r): (e, page) = r
            case .failure(let x): return .exception(x)
            }
            let st = SGXPageType(rawValue: s.pageTypeField)
            let sPending = s.contains(.pending)
            let sModified = s.contains(.modified)
            let sPR = s.contains(.pr)
            let legal =
                (st == .reg && (sPR || sPending) && !sModified)
                || ((st == .tcs || st == .trim) && !sPR && !sPending && sModified)
            guard legal else { return .exception(.generalProtection) }
            var w = region.word(e)
            guard w.present, let pt = SGXPageType(rawValue: w.epcmType), pt == .reg || pt == .tcs || pt == .trim else {
                return sgxPageFault(address)
            }
            // PR is deliberately not compared.
            if w.pending != sPending || w.modified != sModified || w.epcmPermissions != s.permissions || pt != st {
                return .returned(SGXErrorCode.pageAttributesMismatch)
            }
            if st == .tcs, !TCSLayout.isValidForAccept(region.contentPointer(page)!) {
                return .exception(.generalProtection)
            }
            w.set(EDMM_PAGE_PENDING, false)
            w.set(EDMM_PAGE_MODIFIED, false)
            w.set(EDMM_PAGE_PR, false)
            region.store(w, e)
            return .success
        }
    }

    /// ENCLU[EACCEPTCOPY] in the SDM's order: copies `source` into a fresh (EAUG'ed, pending)
    /// page at `address` and gives it the permissions of `flags` (set, not OR-ed).
    ///
    /// Both page operands must be 4 KiB aligned and in ELRANGE (#GP). They resolve like the
    /// accesses the SDM names, destination (RCX) first, then source (RDX): the destination needs
    /// enclave write access (a read-only VMA is a #PF with the write bit, and the hole is not
    /// EAUG'ed), the source read access; a hole on either is EAUG'ed on the way, as on hardware.
    /// Then SECINFO: reserved bits, a type other than PT_REG, or W without R are #GP (PENDING,
    /// MODIFIED and PR are not reserved bits, and EACCEPTCOPY does not look at them). The source
    /// must be a valid, accepted, readable PT_REG page (else #PF on it with the SGX bit); the
    /// destination PT_REG, PENDING, not MODIFIED and RW- (else SGX_PAGE_ATTRIBUTES_MISMATCH).
    public func eacceptcopy(_ address: UInt64, source: UInt64, flags: SecInfoFlags) -> InstructionOutcome {
        locked {
            region.count(.eacceptcopy)
            guard inELRANGE(address), inELRANGE(source) else { return .exception(.generalProtection) }
            let e: UnsafeMutablePointer<edmm_page_entry>
            let page: UInt64
            switch operand(address, .write) {
            case .success(let r): (e, page) = r
            case .failure(let x): return .exception(x)
            }
            let se: UnsafeMutablePointer<edmm_page_entry>
            let sourcePage: UInt64
            switch operand(source, .read) {
            case .success(let r): (se, sourcePage) = r
            case .failure(let x): return .exception(x)
            }
            let perms = flags.permissions
            guard flags.rawValue & SecInfoFlags.reservedMask == 0, flags.pageTypeField == SGXPageType.reg.rawValue,
                !(perms.contains(.write) && !perms.contains(.read))
            else { return .exception(.generalProtection) }
            let sw = region.word(se)
            guard sw.present, sw.epcmType == SGXPageType.reg.rawValue, !sw.pending, !sw.modified,
                sw.epcmPermissions.contains(.read)
            else { return sgxPageFault(source) }
            var w = region.word(e)
            guard w.present, w.epcmType == SGXPageType.reg.rawValue, w.pending, !w.modified, w.epcmPermissions == .rw
            else { return .returned(SGXErrorCode.pageAttributesMismatch) }
            region.contentPointer(page)!.copyMemory(from: region.contentPointer(sourcePage)!, byteCount: Int(Page.size))
            w.epcmPermissions = perms
            w.set(EDMM_PAGE_PENDING, false)
            region.store(w, e)
            return .success
        }
    }

    /// ENCLU[EMODPE]: extends the EPCM permissions (OR); no return code, no PR change, no TLB
    /// shootdown (reference §9.6). `.returned(0)` on success.
    public func emodpe(_ address: UInt64, flags: SecInfoFlags) -> InstructionOutcome {
        locked {
            region.count(.emodpe)
            guard flags.rawValue & SecInfoFlags.reservedMask == 0, inELRANGE(address) else {
                return .exception(.generalProtection)
            }
            let e: UnsafeMutablePointer<edmm_page_entry>
            switch operand(address) {
            case .success(let r): e = r.0
            case .failure(let x): return .exception(x)
            }
            var w = region.word(e)
            guard w.present, w.epcmType == SGXPageType.reg.rawValue, !w.pending, !w.modified else {
                return sgxPageFault(address)
            }
            let s = flags.permissions
            if !w.epcmPermissions.contains(.read) && !s.contains(.read) && s.contains(.write) {
                return .exception(.generalProtection)
            }
            w.epcmPermissions.formUnion(s)
            region.store(w, e)
            return .success
        }
    }

    /// ENCLU with the registers the SDM defines for EACCEPT (leaf 5), EMODPE (6) and
    /// EACCEPTCOPY (7): RBX the SECINFO's address, RCX the page, RDX the source page of
    /// EACCEPTCOPY. The SECINFO is read from enclave memory as the CPU reads it: 64-byte aligned
    /// (else #GP), on a page the enclave may read (else #PF), its reserved bytes zero (else #GP).
    /// Any other leaf number is #GP; EENTER and ERESUME inside an enclave too. nil for the leaves
    /// the model does not have (EREPORT, EGETKEY).
    public func enclu(leaf: UInt64, rbx: UInt64, rcx: UInt64, rdx: UInt64) -> InstructionOutcome? {
        switch leaf {
        case 0, 1: return nil
        case 5, 6, 7: break
        default: return .exception(.generalProtection)
        }
        let flags: SecInfoFlags
        switch secinfo(at: rbx) {
        case .success(let f): flags = f
        case .failure(let x): return .exception(x)
        }
        switch leaf {
        case 5: return eaccept(rcx, flags: flags)
        case 6: return emodpe(rcx, flags: flags)
        default: return eacceptcopy(rcx, source: rdx, flags: flags)
        }
    }

    /// The 64-byte SECINFO operand at `address` (flags word, then 56 reserved bytes).
    private func secinfo(at address: UInt64) -> Result<SecInfoFlags, CPUException> {
        guard address % 64 == 0 else { return .failure(.generalProtection) }
        return locked {
            access(address, .read).flatMap { p -> Result<SecInfoFlags, CPUException> in
                let at = p + Int(address & (Page.size - 1))
                guard UnsafeRawBufferPointer(start: at + 8, count: 56).allSatisfy({ $0 == 0 }) else {
                    return .failure(.generalProtection)
                }
                return .success(SecInfoFlags(rawValue: at.load(as: UInt64.self)))
            }
        }
    }

    // MARK: Helpers

    /// The implicit access to an ENCLU page operand (a read unless the SDM says read/write): the
    /// MMU and fault path (EAUG included) run, but not the EPCM access check; the leaf does its own.
    private func operand(
        _ address: UInt64, _ access: AccessKind = .read
    ) -> Result<(UnsafeMutablePointer<edmm_page_entry>, UInt64), CPUException> {
        switch enclave.translate(address, access) {
        case .mapped(let e, let page): .success((e, page))
        case .exception(let x): .failure(x)
        case .sigbus(let code): .failure(.pageFault(errorCode: code, address: address & ~0xFFF))
        }
    }

    /// A page operand must be 4 KiB aligned and inside ELRANGE, else #GP(0).
    private func inELRANGE(_ address: UInt64) -> Bool {
        address % Page.size == 0 && address >= enclave.base && address - enclave.base < enclave.size
    }

    private func sgxPageFault(_ address: UInt64) -> InstructionOutcome {
        region.count(.sgxFaults)
        return .exception(.pageFault(errorCode: AccessKind.read.errorCode(present: true) | PFCode.sgx, address: address))
    }

    private func locked(_ body: () -> InstructionOutcome) -> InstructionOutcome {
        (try? region.withLock { () throws(SimulatorError) -> InstructionOutcome in body() })
            ?? .exception(.machineCheck)
    }

    private func locked<T>(_ body: () -> Result<T, CPUException>) -> Result<T, CPUException> {
        (try? region.withLock { () throws(SimulatorError) -> Result<T, CPUException> in body() })
            ?? .failure(.machineCheck)
    }
}

extension SimulatedEnclave {
    /// The simulated CPU for this enclave; fails when this process did not map page contents.
    public func cpu() throws(SimulatorError) -> EnclaveCPU {
        guard hasContents else { throw .contentsNotMapped }
        return EnclaveCPU(enclave: self)
    }
}
