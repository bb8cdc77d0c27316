import CEDMMSimABI
import EDMMCore
import Glibc
import SGXDevice
import SGXSimulator

// The C interface of the simulator: every function of c/include/edmm/edmm_sim.h, exported
// with @_cdecl from libedmm_sim.so. Each one returns 0 (or what the leaf or ioctl returns) or
// -errno; none lets a Swift error or trap escape into C.

/// Runs `body` under the registry's lock, turning a SimError into -errno.
private func guarded(_ body: (SimRegistry) throws(SimError) -> Int32) -> Int32 {
    do {
        return try SimRegistry.shared.withLock { () throws(SimError) -> Int32 in try body(SimRegistry.shared) }
    } catch {
        return -error.code
    }
}

private func simulator<T>(_ body: () throws(SimulatorError) -> T) throws(SimError) -> T {
    do {
        return try body()
    } catch {
        throw SimError(error)
    }
}

// MARK: Machine

@_cdecl("edmm_sim_machine_create")
public func edmmSimMachineCreate(_ epcPages: UInt64, _ machineFD: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded { registry throws(SimError) in
        guard let machineFD else { return -EINVAL }
        var configuration = SimulatedMachine.Configuration()
        if epcPages != 0 { configuration.epcPages = epcPages }
        let machine = try simulator { () throws(SimulatorError) in try SimulatedMachine.create(configuration) }
        let fd = fcntl(machine.fd, F_DUPFD_CLOEXEC, 0)
        guard fd >= 0 else { return -errno }
        // Registered under the memfd's inode, so that the caller's descriptor finds this object.
        _ = try registry.machine(fd: fd, adopting: machine)
        machineFD.pointee = fd
        return 0
    }
}

@_cdecl("edmm_sim_machine_info")
public func edmmSimMachineInfo(_ machineFD: Int32, _ info: UnsafeMutablePointer<edmm_sim_machine_info>?) -> Int32 {
    guarded { registry throws(SimError) in
        let machine = try registry.machine(fd: machineFD)
        let stats = machine.stats
        info?.pointee = edmm_sim_machine_info(
            epc_pages: stats.epcPages, used_pages: stats.usedPages, ewb: stats.ewb, eldu: stats.eldu,
            enclave_capacity: machine.enclaveCapacity, alive_enclaves: UInt32(clamping: stats.aliveEnclaves),
            sgx2: machine.supportsSGX2)
        return 0
    }
}

// MARK: Building

private func create(_ registry: SimRegistry, _ machineFD: Int32, _ base: UInt64, _ size: UInt64) throws(SimError) -> SimulatedEnclave {
    let machine = try registry.machine(fd: machineFD)
    let enclave = try simulator { () throws(SimulatorError) in try SimulatedEnclave.create(machine: machine, base: base, size: size) }
    _ = try registry.add(enclave)
    return enclave
}

/// The caller's own descriptor of the enclave (the registry keeps the enclave's).
private func handOut(_ enclave: SimulatedEnclave, _ out: UnsafeMutablePointer<Int32>?) throws(SimError) {
    let fd = fcntl(enclave.fd, F_DUPFD_CLOEXEC, 0)
    guard fd >= 0 else { throw .errno(errno) }
    out?.pointee = fd
    if out == nil { close(fd) }
}

@_cdecl("edmm_sim_ecreate")
public func edmmSimECreate(_ machineFD: Int32, _ base: UInt64, _ size: UInt64, _ enclaveFD: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded { registry throws(SimError) in
        guard enclaveFD != nil else { return -EINVAL }
        let enclave = try create(registry, machineFD, base, size)
        try handOut(enclave, enclaveFD)
        return 0
    }
}

@_cdecl("edmm_sim_enclave_create")
public func edmmSimEnclaveCreate(_ machineFD: Int32, _ base: UInt64, _ size: UInt64, _ enclaveFD: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded { registry throws(SimError) in
        guard enclaveFD != nil else { return -EINVAL }
        guard size >= 2 * Page.size else { return -EINVAL }
        let enclave = try create(registry, machineFD, base, size)
        var rc = enclave.addPages(offset: 0, length: Page.size, secinfo: .pageType(.tcs)).errno
        if rc == 0 { rc = enclave.addPages(offset: Page.size, length: Page.size, secinfo: [.pageType(.reg), .r, .w]).errno }
        if rc == 0 { rc = enclave.initialize() }
        if rc == 0 { rc = enclave.mmap(address: base, length: size, protection: .rw) }
        guard rc == 0 else {
            _ = registry.remove(fd: enclave.fd)
            enclave.close()
            return -rc
        }
        try handOut(enclave, enclaveFD)
        return 0
    }
}

@_cdecl("edmm_sim_enclave_close")
public func edmmSimEnclaveClose(_ enclaveFD: Int32) -> Int32 {
    guarded { registry throws(SimError) in
        guard let enclave = registry.remove(fd: enclaveFD) else { return -ENOENT }
        enclave.close()
        return 0
    }
}

@_cdecl("edmm_sim_enclave_info")
public func edmmSimEnclaveInfo(_ enclaveFD: Int32, _ info: UnsafeMutablePointer<edmm_sim_enclave_info>?) -> Int32 {
    guarded { registry throws(SimError) in
        let e = try registry.enclave(fd: enclaveFD).enclave
        info?.pointee = edmm_sim_enclave_info(
            base: e.base, size: e.size, initialized: e.isInitialized, present_pages: e.presentPages,
            resident_pages: e.residentPages, contents_offset: e.contentsOffset)
        return 0
    }
}

// MARK: The driver

/// The kernel's `struct sgx_secinfo`: the flags word and 56 reserved bytes that must be zero.
private func readSecInfo(_ address: UInt64) -> SecInfoFlags? {
    guard let p = UnsafeRawPointer(bitPattern: UInt(address)) else { return nil }
    let reserved = UnsafeRawBufferPointer(start: p + 8, count: 56)
    guard reserved.allSatisfy({ $0 == 0 }) else { return SecInfoFlags(rawValue: ~0) }
    return SecInfoFlags(rawValue: p.load(as: UInt64.self))
}

@_cdecl("edmm_sim_ioctl")
public func edmmSimIoctl(_ enclaveFD: Int32, _ cmd: UInt, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guarded { registry throws(SimError) in
        let e = try registry.enclave(fd: enclaveFD).enclave
        guard let arg else { return -EFAULT }
        switch cmd {
        case UInt(EDMM_SIM_IOC_ADD_PAGES):
            let p = arg.assumingMemoryBound(to: edmm_sim_add_pages.self)
            guard p.pointee.src % Page.size == 0 else { return -EINVAL }
            guard let source = UnsafeRawPointer(bitPattern: UInt(p.pointee.src)) else { return -EFAULT }
            guard let secinfo = readSecInfo(p.pointee.secinfo) else { return -EFAULT }
            let (rc, count) = e.addPages(
                offset: p.pointee.offset, length: p.pointee.length, secinfo: secinfo,
                source: UnsafeRawBufferPointer(start: source, count: Int(clamping: p.pointee.length)))
            p.pointee.count = count
            return -rc
        case UInt(EDMM_SIM_IOC_INIT):
            return -e.initialize()
        case UInt(EDMM_SIM_IOC_RESTRICT_PERMISSIONS):
            let p = arg.assumingMemoryBound(to: edmm_sim_restrict_permissions.self)
            var params = RestrictPermissionsParams(
                offset: p.pointee.offset, length: p.pointee.length, permissions: p.pointee.permissions,
                result: p.pointee.result, count: p.pointee.count)
            let rc = e.restrictPermissions(&params)
            p.pointee.result = params.result
            p.pointee.count = params.count
            return -rc
        case UInt(EDMM_SIM_IOC_MODIFY_TYPES):
            let p = arg.assumingMemoryBound(to: edmm_sim_modify_types.self)
            var params = ModifyTypesParams(
                offset: p.pointee.offset, length: p.pointee.length, pageType: p.pointee.page_type,
                result: p.pointee.result, count: p.pointee.count)
            let rc = e.modifyTypes(&params)
            p.pointee.result = params.result
            p.pointee.count = params.count
            return -rc
        case UInt(EDMM_SIM_IOC_REMOVE_PAGES):
            let p = arg.assumingMemoryBound(to: edmm_sim_remove_pages.self)
            var params = RemovePagesParams(offset: p.pointee.offset, length: p.pointee.length, count: p.pointee.count)
            let rc = e.removePages(&params)
            p.pointee.count = params.count
            return -rc
        default:
            return -ENOTTY
        }
    }
}

// MARK: Mappings

private func permissions(_ prot: Int32) -> PagePermissions { PagePermissions(rawValue: UInt8(prot & 0x7)) }

/// The part of [address, address + length) inside ELRANGE, page-rounded.
private func insideELRANGE(_ e: SimulatedEnclave, _ address: UInt64, _ length: UInt64) -> (start: UInt64, end: UInt64)? {
    let (end, overflow) = address.addingReportingOverflow((length + Page.size - 1) & ~(Page.size - 1))
    guard !overflow else { return nil }
    let lo = max(address, e.base)
    let hi = min(end, e.base + e.size)
    return lo < hi ? (lo, hi) : nil
}

@_cdecl("edmm_sim_mmap")
public func edmmSimMmap(_ enclaveFD: Int32, _ address: UInt64, _ length: UInt64, _ prot: Int32, _ flags: Int32) -> Int32 {
    guarded { registry throws(SimError) in
        let e = try registry.enclave(fd: enclaveFD).enclave
        guard prot & ~0x7 == 0, flags & ~EDMM_SIM_MAP_CONTENTS == 0 else { return -EINVAL }
        let rc = e.mmap(address: address, length: length, protection: permissions(prot))
        guard rc == 0 else { return -rc }
        guard flags & EDMM_SIM_MAP_CONTENTS != 0, let (start, end) = insideELRANGE(e, address, length) else { return 0 }
        let mapped = Glibc.mmap(
            UnsafeMutableRawPointer(bitPattern: UInt(start)), Int(end - start), prot, MAP_SHARED | MAP_FIXED, e.fd,
            off_t(truncatingIfNeeded: e.contentsOffset + (start - e.base)))
        guard mapped != MAP_FAILED else {
            let error = errno
            _ = e.munmap(address: address, length: length)
            return -error
        }
        registry.noteNativeMapping(fd: enclaveFD)
        return 0
    }
}

@_cdecl("edmm_sim_mprotect")
public func edmmSimMprotect(_ enclaveFD: Int32, _ address: UInt64, _ length: UInt64, _ prot: Int32) -> Int32 {
    guarded { registry throws(SimError) in
        let entry = try registry.enclave(fd: enclaveFD)
        guard prot & ~0x7 == 0 else { return -EINVAL }
        let rc = entry.enclave.mprotect(address: address, length: length, protection: permissions(prot))
        guard rc == 0 else { return -rc }
        if registry.hasNativeMapping(fd: enclaveFD), let (start, end) = insideELRANGE(entry.enclave, address, length) {
            guard Glibc.mprotect(UnsafeMutableRawPointer(bitPattern: UInt(start)), Int(end - start), prot) == 0 else { return -errno }
        }
        return 0
    }
}

@_cdecl("edmm_sim_munmap")
public func edmmSimMunmap(_ enclaveFD: Int32, _ address: UInt64, _ length: UInt64) -> Int32 {
    guarded { registry throws(SimError) in
        let entry = try registry.enclave(fd: enclaveFD)
        let rc = entry.enclave.munmap(address: address, length: length)
        guard rc == 0 else { return -rc }
        if registry.hasNativeMapping(fd: enclaveFD), let (start, end) = insideELRANGE(entry.enclave, address, length) {
            guard Glibc.munmap(UnsafeMutableRawPointer(bitPattern: UInt(start)), Int(end - start)) == 0 else { return -errno }
        }
        return 0
    }
}

// MARK: The simulated CPU

private func report(_ outcome: InstructionOutcome, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?) -> Int32 {
    switch outcome {
    case .returned(let rax):
        return Int32(truncatingIfNeeded: rax)
    case .exception(let x):
        fault?.pointee = edmm_enclu_fault(vector: UInt8(truncatingIfNeeded: x.vector), error_code: UInt32(x.errorCode), address: x.address)
        return EDMM_ENCLU_FAULTED
    }
}

private func report(_ result: Result<Void, CPUException>, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?) -> Int32 {
    switch result {
    case .success: return 0
    case .failure(let x): return report(.exception(x), fault)
    }
}

@_cdecl("edmm_sim_eaccept")
public func edmmSimEaccept(_ enclaveFD: Int32, _ address: UInt64, _ secinfo: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?) -> Int32 {
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
public func edmmSimEmodpe(_ enclaveFD: Int32, _ address: UInt64, _ secinfo: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?) -> Int32 {
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
public func edmmSimWrite(_ enclaveFD: Int32, _ address: UInt64, _ value: UInt64, _ fault: UnsafeMutablePointer<edmm_enclu_fault>?) -> Int32 {
    guarded { registry throws(SimError) in
        guard address % 8 == 0 else { return -EINVAL }
        return report(try registry.enclave(fd: enclaveFD).cpu.write(address, value), fault)
    }
}

// The ENCLU table of libedmm-enclave: the context is the enclave descriptor.

private func descriptor(_ context: UnsafeMutableRawPointer?) -> Int32 { Int32(truncatingIfNeeded: Int(bitPattern: context)) }

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

private func stateCode(_ state: EPCMState) -> UInt8 {
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
