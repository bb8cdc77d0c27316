import CEDMMSimABI
import EDMMCore
import Glibc
import SGXDevice
import SGXSimulator

// MARK: The driver

/// The kernel's `struct sgx_secinfo`: the flags word and 56 reserved bytes that must be zero.
func readSecInfo(_ address: UInt64) -> SecInfoFlags? {
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

func permissions(_ prot: Int32) -> PagePermissions { PagePermissions(rawValue: UInt8(prot & 0x7)) }

/// The part of [address, address + length) inside ELRANGE, page-rounded.
func insideELRANGE(_ e: SimulatedEnclave, _ address: UInt64, _ length: UInt64) -> (start: UInt64, end: UInt64)? {
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
