import CEDMMSimABI
import EDMMCore
import Glibc
import SGXDevice
import SGXSimulator

// MARK: The simulated CPU

func report(_ outcome: InstructionOutcome, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?) -> Int32 {
    switch outcome {
    case .returned(let rax):
        return Int32(truncatingIfNeeded: rax)
    case .exception(let x):
        fault?.pointee = edmm_enclu_fault(vector: UInt8(truncatingIfNeeded: x.vector), error_code: UInt32(x.errorCode), address: x.address)
        return EDMM_ENCLU_FAULTED
    }
}

func report(_ result: Result<Void, CPUException>, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?) -> Int32 {
    switch result {
    case .success: return 0
    case .failure(let x): return report(.exception(x), fault)
    }
}

@_cdecl("edmm_sim_eaccept")
public func edmmSimEaccept(_ enclaveFD: Int32, _ address: UInt64, _ secinfo: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?)
    -> Int32
{
    guarded { registry throws(SimError) in
        report(try registry.enclave(fd: enclaveFD).cpu.eaccept(address, flags: SecInfoFlags(rawValue: secinfo)), fault)
    }
}

@_cdecl("edmm_sim_eacceptcopy")
public func edmmSimEacceptcopy(
    _ enclaveFD: Int32, _ address: UInt64, _ source: UInt64, _ secinfo: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?
) -> Int32 {
    guarded { registry throws(SimError) in
        report(try registry.enclave(fd: enclaveFD).cpu.eacceptcopy(address, source: source, flags: SecInfoFlags(rawValue: secinfo)), fault)
    }
}

@_cdecl("edmm_sim_emodpe")
public func edmmSimEmodpe(_ enclaveFD: Int32, _ address: UInt64, _ secinfo: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?)
    -> Int32
{
    guarded { registry throws(SimError) in
        report(try registry.enclave(fd: enclaveFD).cpu.emodpe(address, flags: SecInfoFlags(rawValue: secinfo)), fault)
    }
}

@_cdecl("edmm_sim_read")
public func edmmSimRead(
    _ enclaveFD: Int32, _ address: UInt64, _ value: UnsafeMutablePointer<UInt64>?, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?
) -> Int32 {
    guarded { registry throws(SimError) in
        guard address % 8 == 0 else { return -EINVAL }
        switch try registry.enclave(fd: enclaveFD).cpu.read(address) {
        case .success(let v):
            value?.pointee = v
            return 0
        case .failure(let x):
            return report(.exception(x), fault)
        }
    }
}

@_cdecl("edmm_sim_write")
public func edmmSimWrite(_ enclaveFD: Int32, _ address: UInt64, _ value: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?) -> Int32
{
    guarded { registry throws(SimError) in
        guard address % 8 == 0 else { return -EINVAL }
        return report(try registry.enclave(fd: enclaveFD).cpu.write(address, value), fault)
    }
}

@_cdecl("edmm_sim_native_fault")
public func edmmSimNativeFault(_ enclaveFD: Int32, _ address: UInt64, _ access: Int32, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?)
    -> Int32
{
    guarded { registry throws(SimError) in
        let entry = try registry.enclave(fd: enclaveFD)
        guard case .onDemand = registry.nativeMapping(fd: enclaveFD), [1, 2, 4].contains(access) else { return -EINVAL }
        switch entry.cpu.probe(address, permissions(access)) {
        case .failure(let x):
            return report(.exception(x), fault)
        case .success(let grant):
            let page = address & ~(Page.size - 1)
            var prot: Int32 = PROT_NONE
            if grant.contains(.read) { prot |= PROT_READ }
            if grant.contains(.write) { prot |= PROT_WRITE | PROT_READ }
            if grant.contains(.execute) { prot |= PROT_EXEC }
            guard Glibc.mprotect(UnsafeMutableRawPointer(bitPattern: UInt(page)), Int(Page.size), prot) == 0 else { return -errno }
            registry.noteOpened(fd: enclaveFD, page: page, prot: prot)
            return 0
        }
    }
}

@_cdecl("edmm_sim_native_flush")
public func edmmSimNativeFlush(_ enclaveFD: Int32) -> Int32 {
    guarded { registry throws(SimError) in
        _ = try registry.enclave(fd: enclaveFD)
        return registry.flushNative(fd: enclaveFD)
    }
}

@_cdecl("edmm_sim_enclu_exec")
public func edmmSimEnclu(
    _ enclaveFD: Int32, _ leaf: UInt64, _ rbx: UInt64, _ rcx: UInt64, _ rdx: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?
) -> Int32 {
    guarded { registry throws(SimError) in
        guard let outcome = try registry.enclave(fd: enclaveFD).cpu.enclu(leaf: leaf, rbx: rbx, rcx: rcx, rdx: rdx) else { return -ENOSYS }
        // EACCEPT and EMODPE change the EPCM entry of their page.
        registry.flushNative(fd: enclaveFD)
        return report(outcome, fault)
    }
}

@_cdecl("edmm_sim_tcs_enter")
public func edmmSimTcsEnter(
    _ enclaveFD: Int32, _ tcs: UInt64, _ leaf: UInt32, _ entry: UnsafeMutablePointer<edmm_sim_tcs_entry>?,
    _ fault: UnsafeMutablePointer<edmm_enclu_fault>?
) -> Int32 {
    guarded { registry throws(SimError) in
        guard leaf == ENCLULeaf.eenter || leaf == ENCLULeaf.eresume else { return -EINVAL }
        switch try registry.enclave(fd: enclaveFD).cpu.enterTCS(tcs, leaf: leaf) {
        case .failure(let x):
            return report(.exception(x), fault)
        case .success(let e):
            entry?.pointee = edmm_sim_tcs_entry(entry: e.entry, ssa: e.ssa, cssa: e.cssa, nssa: e.nssa)
            return 0
        }
    }
}

@_cdecl("edmm_sim_tcs_exit")
public func edmmSimTcsExit(_ enclaveFD: Int32, _ tcs: UInt64, _ exception: UnsafePointer<edmm_enclu_fault>?) -> Int32 {
    guarded { registry throws(SimError) in
        guard let frame = try registry.enclave(fd: enclaveFD).cpu.leaveTCS(tcs, aex: exception != nil) else { return -EINVAL }
        // EEXIT and AEX flush the TLB entries of the enclave.
        registry.flushNative(fd: enclaveFD)
        return Int32(clamping: frame)
    }
}

// The ENCLU table of libedmm-enclave: the context is the enclave descriptor.

func descriptor(_ context: UnsafeMutableRawPointer?) -> Int32 { Int32(truncatingIfNeeded: Int(bitPattern: context)) }

@_cdecl("edmm_sim_enclu_eaccept")
public func edmmSimEncluEaccept(
    _ context: UnsafeMutableRawPointer?, _ secinfo: UInt64, _ address: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?
) -> Int32 {
    edmmSimEaccept(descriptor(context), address, secinfo, fault)
}

@_cdecl("edmm_sim_enclu_eacceptcopy")
public func edmmSimEncluEacceptcopy(
    _ context: UnsafeMutableRawPointer?, _ secinfo: UInt64, _ address: UInt64, _ source: UInt64,
    _ fault: UnsafeMutablePointer<edmm_enclu_fault>?
) -> Int32 {
    edmmSimEacceptcopy(descriptor(context), address, source, secinfo, fault)
}

@_cdecl("edmm_sim_enclu_emodpe")
public func edmmSimEncluEmodpe(
    _ context: UnsafeMutableRawPointer?, _ secinfo: UInt64, _ address: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?
) -> Int32 {
    edmmSimEmodpe(descriptor(context), address, secinfo, fault)
}

// MARK: The EPCM

func stateCode(_ state: EPCMState) -> UInt8 {
    switch state {
    case .hole: 0
    case .regPending: 1
    case .reg: 2
    case .regPR: 3
    case .tcsModified: 4
    case .tcs: 5
    case .trimModified: 6
    case .trim: 7
    case .invalid: 8
    }
}

@_cdecl("edmm_sim_page")
public func edmmSimPage(_ enclaveFD: Int32, _ offset: UInt64, _ page: UnsafeMutablePointer<edmm_sim_page>?) -> Int32 {
    guarded { registry throws(SimError) in
        let e = try registry.enclave(fd: enclaveFD).enclave
        guard offset < e.size else { return -EINVAL }
        let info = e.pageInfo(offset: offset)
        page?.pointee = edmm_sim_page(
            state: stateCode(info.state), permissions: info.permissions.rawValue,
            max_protection: info.vmMaxProtection.rawValue, resident: info.resident)
        return 0
    }
}

@_cdecl("edmm_sim_page_state_name")
public func edmmSimPageStateName(_ state: Int32) -> UnsafePointer<CChar>? {
    // Static strings (NUL-terminated literals), valid for the life of the process.
    let name: StaticString =
        switch state {
        case 0: "hole"
        case 1: "reg_pending"
        case 2: "reg"
        case 3: "reg_pr"
        case 4: "tcs_modified"
        case 5: "tcs"
        case 6: "trim_modified"
        case 7: "trim"
        default: "invalid"
        }
    return UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)
}
