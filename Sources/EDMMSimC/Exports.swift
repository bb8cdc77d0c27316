import CEDMMSimABI
import EDMMCore
import Glibc
import SGXDevice
import SGXSimulator

// The C interface of the simulator: every function of c/include/edmm/edmm_sim.h, exported
// with @_cdecl from libedmm_sim.so. Each one returns 0 (or what the leaf or ioctl returns) or
// -errno; none lets a Swift error or trap escape into C.

/// Runs `body` under the registry's lock, turning a SimError into -errno. The thread counts as
/// inside the library meanwhile (edmm_sim_active), for an interposer of its libc calls.
func guarded(_ body: (SimRegistry) throws(SimError) -> Int32) -> Int32 {
    edmmsim_enter()
    defer { edmmsim_leave() }
    do {
        return try SimRegistry.shared.withLock { () throws(SimError) -> Int32 in try body(SimRegistry.shared) }
    } catch {
        return -error.code
    }
}

func simulator<T>(_ body: () throws(SimulatorError) -> T) throws(SimError) -> T {
    do {
        return try body()
    } catch {
        throw SimError(error)
    }
}

// MARK: Machine

@_cdecl("edmm_sim_machine_create")
public func edmmSimMachineCreate(_ epcPages: UInt64, _ machineFD: UnsafeMutablePointer<Int32>?) -> Int32 {
    edmmSimMachineCreateWithFaults(epcPages, nil, machineFD)
}

@_cdecl("edmm_sim_machine_create_with_faults")
public func edmmSimMachineCreateWithFaults(
    _ epcPages: UInt64, _ faults: UnsafePointer<CChar>?, _ machineFD: UnsafeMutablePointer<Int32>?
) -> Int32 {
    guarded { registry throws(SimError) in
        guard let machineFD else { return -EINVAL }
        var configuration = SimulatedMachine.Configuration()
        if epcPages != 0 { configuration.epcPages = epcPages }
        if let faults {
            guard let parsed = try? SimulatorFaults(parsing: String(cString: faults)) else { return -EINVAL }
            configuration.faults = parsed
        }
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
func copyIn(_ address: UInt64, _ count: Int) -> [UInt8]? {
    var bytes = [UInt8](repeating: 0, count: count)
    let rc = bytes.withUnsafeMutableBytes { edmmsim_copy_in($0.baseAddress, address, count) }
    return rc == 0 ? bytes : nil
}

/// SGX_IOC_ENCLAVE_CREATE on a device: ECREATE, then the device's descriptor (same number)
/// becomes the enclave's.
func createIoctl(_ registry: SimRegistry, _ fd: Int32, _ machine: SimulatedMachine, _ arg: UnsafeMutableRawPointer) -> Int32 {
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
func deviceIoctl(_ registry: SimRegistry, _ fd: Int32, _ machine: SimulatedMachine, _ cmd: UInt, _ arg: UnsafeMutableRawPointer?)
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

func create(_ registry: SimRegistry, _ machineFD: Int32, _ base: UInt64, _ size: UInt64) throws(SimError) -> SimulatedEnclave {
    let machine = try registry.machine(fd: machineFD)
    let enclave = try simulator { () throws(SimulatorError) in try SimulatedEnclave.create(machine: machine, base: base, size: size) }
    _ = try registry.add(enclave)
    return enclave
}

/// The caller's own descriptor of the enclave (the registry keeps the enclave's).
func handOut(_ enclave: SimulatedEnclave, _ out: UnsafeMutablePointer<Int32>?) throws(SimError) {
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
