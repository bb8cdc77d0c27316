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

@_cdecl("edmm_sim_cpuid")
public func edmmSimCpuid(_ machineFD: Int32, _ subleaf: UInt32, _ regs: UnsafeMutablePointer<UInt32>?) -> Int32 {
    guarded { registry throws(SimError) in
        guard let regs else { return -EINVAL }
        let r = try registry.machine(fd: machineFD).cpuidLeaf12(subleaf: subleaf)
        (regs[0], regs[1], regs[2], regs[3]) = (r.eax, r.ebx, r.ecx, r.edx)
        return 0
    }
}

// MARK: The device

@_cdecl("edmm_sim_device_open")
public func edmmSimDeviceOpen(_ machineFD: Int32, _ flags: Int32, _ deviceFD: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded { registry throws(SimError) in
        guard let deviceFD, flags & ~O_CLOEXEC == 0 else { return -EINVAL }
        let machine = try registry.machine(fd: machineFD)
        let fd = edmmsim_device_memfd(flags & O_CLOEXEC != 0 ? 1 : 0)
        guard fd >= 0 else { return fd }
        do throws(SimError) {
            try registry.addDevice(fd: fd, machine: machine)
        } catch {
            close(fd)
            throw error
        }
        deviceFD.pointee = fd
        return 0
    }
}

/// copy_from_user: `count` bytes at the caller's address, or nil when they are not readable.
private func copyIn(_ address: UInt64, _ count: Int) -> [UInt8]? {
    var bytes = [UInt8](repeating: 0, count: count)
    let rc = bytes.withUnsafeMutableBytes { edmmsim_copy_in($0.baseAddress, address, count) }
    return rc == 0 ? bytes : nil
}

/// SGX_IOC_ENCLAVE_CREATE on a device: ECREATE, then the device's descriptor (same number)
/// becomes the enclave's.
private func createIoctl(_ registry: SimRegistry, _ fd: Int32, _ machine: SimulatedMachine, _ arg: UnsafeMutableRawPointer) -> Int32 {
    guard let create = copyIn(UInt64(UInt(bitPattern: arg)), MemoryLayout<edmm_sim_create>.size),
        let secsBytes = copyIn(create.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }, SECS.byteCount)
    else { return -EFAULT }
    let secs = secsBytes.withUnsafeBytes { SECS(bytes: $0) }
    switch SimulatedEnclave.create(machine: machine, secs: secs) {
    case .failed(let code, _):
        return -code
    case .created(let enclave):
        let cloexec = fcntl(fd, F_GETFD) & FD_CLOEXEC != 0
        registry.removeDevice(fd: fd)
        let rc = edmmsim_replace_fd(enclave.fd, fd, cloexec ? 1 : 0)
        guard rc == 0 else {
            enclave.close()
            return rc
        }
        do {
            _ = try registry.add(enclave)
        } catch {
            enclave.close()
            return -error.code
        }
        return 0
    }
}

/// An ioctl on a device that has no enclave yet.
private func deviceIoctl(_ registry: SimRegistry, _ fd: Int32, _ machine: SimulatedMachine, _ cmd: UInt, _ arg: UnsafeMutableRawPointer?)
    -> Int32
{
    switch cmd {
    case UInt(EDMM_SIM_IOC_CREATE):
        guard let arg else { return -EFAULT }
        return createIoctl(registry, fd, machine, arg)
    case UInt(EDMM_SIM_IOC_ADD_PAGES), UInt(EDMM_SIM_IOC_INIT):
        return -EINVAL
    case UInt(EDMM_SIM_IOC_RESTRICT_PERMISSIONS), UInt(EDMM_SIM_IOC_MODIFY_TYPES), UInt(EDMM_SIM_IOC_REMOVE_PAGES):
        return machine.supportsSGX2 ? -EINVAL : -ENODEV
    default:
        return -ENOTTY
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
        if registry.device(fd: enclaveFD) != nil {
            registry.removeDevice(fd: enclaveFD)
            return 0
        }
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
        if let machine = registry.device(fd: enclaveFD) { return deviceIoctl(registry, enclaveFD, machine, cmd, arg) }
        let e = try registry.enclave(fd: enclaveFD).enclave
        guard let arg else { return -EFAULT }
        // The SGX2 ioctls change the EPCM: a natively opened page may allow too much now.
        defer { registry.flushNative(fd: enclaveFD) }
        switch cmd {
        case UInt(EDMM_SIM_IOC_CREATE):
            // SGX_ENCL_CREATED is set.
            return -EINVAL
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
            // sgx_ioc_enclave_init(): the state, then the copies, then the SIGSTRUCT checks.
            guard !e.isInitialized else { return -EINVAL }
            guard let initArg = copyIn(UInt64(UInt(bitPattern: arg)), MemoryLayout<edmm_sim_init>.size),
                let sigstruct = copyIn(initArg.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }, SigStruct.byteCount)
            else { return -EFAULT }
            if sigstruct.withUnsafeBytes({ SigStruct(bytes: $0) }).initRefusal != nil { return -EINVAL }
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
        let known = EDMM_SIM_MAP_CONTENTS | EDMM_SIM_MAP_ON_DEMAND | EDMM_SIM_MAP_PRIVATE
        guard prot & ~0x7 == 0, flags & ~known == 0, flags & EDMM_SIM_MAP_CONTENTS == 0 || flags & EDMM_SIM_MAP_ON_DEMAND == 0
        else { return -EINVAL }
        // An enclave with no pages yet can be mapped anywhere; there is nothing to map.
        if registry.device(fd: enclaveFD) != nil { return 0 }
        let e = try registry.enclave(fd: enclaveFD).enclave
        let rc = e.mmap(address: address, length: length, protection: permissions(prot), shared: flags & EDMM_SIM_MAP_PRIVATE == 0)
        guard rc == 0 else { return -rc }
        let onDemand = flags & EDMM_SIM_MAP_ON_DEMAND != 0
        guard flags & EDMM_SIM_MAP_CONTENTS != 0 || onDemand, let (start, end) = insideELRANGE(e, address, length) else { return 0 }
        registry.flushNative(fd: enclaveFD, from: start, to: end)
        let mapped = Glibc.mmap(
            UnsafeMutableRawPointer(bitPattern: UInt(start)), Int(end - start), onDemand ? PROT_NONE : prot, MAP_SHARED | MAP_FIXED,
            e.fd, off_t(truncatingIfNeeded: e.contentsOffset + (start - e.base)))
        guard mapped != MAP_FAILED else {
            let error = errno
            _ = e.munmap(address: address, length: length)
            return -error
        }
        registry.noteNativeMapping(fd: enclaveFD, onDemand: onDemand)
        return 0
    }
}

@_cdecl("edmm_sim_mprotect")
public func edmmSimMprotect(_ enclaveFD: Int32, _ address: UInt64, _ length: UInt64, _ prot: Int32) -> Int32 {
    guarded { registry throws(SimError) in
        if registry.device(fd: enclaveFD) != nil { return 0 }
        let entry = try registry.enclave(fd: enclaveFD)
        guard prot & ~0x7 == 0 else { return -EINVAL }
        let rc = entry.enclave.mprotect(address: address, length: length, protection: permissions(prot))
        guard rc == 0 else { return -rc }
        guard let (start, end) = insideELRANGE(entry.enclave, address, length) else { return 0 }
        switch registry.nativeMapping(fd: enclaveFD) {
        case .contents:
            guard Glibc.mprotect(UnsafeMutableRawPointer(bitPattern: UInt(start)), Int(end - start), prot) == 0 else { return -errno }
        case .onDemand:
            return registry.flushNative(fd: enclaveFD, from: start, to: end)
        case nil:
            break
        }
        return 0
    }
}

@_cdecl("edmm_sim_munmap")
public func edmmSimMunmap(_ enclaveFD: Int32, _ address: UInt64, _ length: UInt64) -> Int32 {
    guarded { registry throws(SimError) in
        if registry.device(fd: enclaveFD) != nil { return 0 }
        let entry = try registry.enclave(fd: enclaveFD)
        let rc = entry.enclave.munmap(address: address, length: length)
        guard rc == 0 else { return -rc }
        if registry.nativeMapping(fd: enclaveFD) != nil, let (start, end) = insideELRANGE(entry.enclave, address, length) {
            registry.flushNative(fd: enclaveFD, from: start, to: end)
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
