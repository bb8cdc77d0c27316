import Glibc
import SGXSimulator

/// The machines and enclaves this process opened through the C interface, keyed by the
/// memfd's inode so that any dup of a descriptor (or the same memfd received again) finds the
/// same object. This is the library's only state; edmm_sim.h documents it.
///
/// fork: a child must not use its parent's objects (their process-local state and attachments
/// are the parent's), so the first call in a child starts from empty tables, keeping only the
/// parent's machine descriptors to open the machines again. The parent's objects are left
/// alone (never deinitialised in the child: that would detach the parent's attachments). The
/// lock is a plain pthread mutex taken around fork by an atfork handler, so a child never
/// inherits it locked.
final class SimRegistry: @unchecked Sendable {
    struct FileKey: Hashable {
        var device: UInt64
        var inode: UInt64

        init?(fd: Int32) {
            var st = stat()
            guard fstat(fd, &st) == 0 else { return nil }
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
        }
    }

    struct Enclave {
        let enclave: SimulatedEnclave
        let cpu: EnclaveCPU
    }

    static let shared = SimRegistry()

    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var pid = getpid()
    private var machines: [FileKey: SimulatedMachine] = [:]
    private var enclaves: [FileKey: Enclave] = [:]
    /// Descriptors of edmm_sim_device_open with no enclave yet, and their machine's key.
    private var devices: [FileKey: FileKey] = [:]
    /// Enclaves whose contents this process also mapped natively, and how.
    private var native: [FileKey: NativeMapping] = [:]

    enum NativeMapping {
        /// EDMM_SIM_MAP_CONTENTS: with the VMA's protection.
        case contents
        /// EDMM_SIM_MAP_ON_DEMAND: no access, except the pages `open` lists (page address ->
        /// the PROT_* bits they were opened to).
        case onDemand(open: [UInt64: Int32])
    }
    /// Objects of a parent process, kept referenced (and so never deinitialised) in a child.
    private var inherited: [AnyObject] = []

    private init() {
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        pthread_atfork(
            { SimRegistry.shared.lockForFork() }, { SimRegistry.shared.unlockForFork() },
            { SimRegistry.shared.unlockForFork() })
    }

    private func lockForFork() { pthread_mutex_lock(lock) }
    private func unlockForFork() { pthread_mutex_unlock(lock) }

    func withLock<T>(_ body: () throws(SimError) -> T) throws(SimError) -> T {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        adoptForkIfNeeded()
        return try body()
    }

    private func adoptForkIfNeeded() {
        let me = getpid()
        guard me != pid else { return }
        pid = me
        let parentMachines = Array(machines.values)
        inherited += parentMachines as [AnyObject]
        inherited += enclaves.values.map { $0.enclave as AnyObject }
        machines = [:]
        enclaves = [:]
        // The native mappings were inherited (MAP_SHARED), the simulated MMU's VMAs were not.
        native = [:]
        for parent in parentMachines {
            if let machine = try? SimulatedMachine.open(fd: parent.fd), let key = FileKey(fd: machine.fd) {
                machines[key] = machine
            }
        }
    }

    // MARK: Lookups (lock held)

    func machine(fd: Int32, adopting created: SimulatedMachine? = nil) throws(SimError) -> SimulatedMachine {
        guard let key = FileKey(fd: fd) else { throw .errno(EBADF) }
        if let created {
            machines[key] = created
            return created
        }
        if let known = machines[key] { return known }
        let machine: SimulatedMachine
        do {
            machine = try SimulatedMachine.open(fd: fd)
        } catch {
            throw SimError(error)
        }
        // Keyed by the machine's own descriptor's inode: the same memfd as `fd`.
        machines[key] = machine
        return machine
    }

    func enclave(fd: Int32) throws(SimError) -> Enclave {
        guard let key = FileKey(fd: fd) else { throw .errno(EBADF) }
        if let known = enclaves[key], !known.enclave.isClosed { return known }
        var lastError = SimError.errno(ENXIO)
        for machine in machines.values {
            do {
                let enclave = try SimulatedEnclave.open(fd: fd, machine: machine)
                return try add(enclave, key: key)
            } catch let error as SimulatorError {
                lastError = SimError(error)
                if error == .wrongMachine { continue }
                throw lastError
            } catch {
                throw error as? SimError ?? .errno(EIO)
            }
        }
        // ENXIO: no machine of this process matches (open it first: edmm_sim_machine_info).
        throw lastError
    }

    func add(_ enclave: SimulatedEnclave, key: FileKey? = nil) throws(SimError) -> Enclave {
        guard let key = key ?? FileKey(fd: enclave.fd) else { throw .errno(EBADF) }
        let cpu: EnclaveCPU
        do {
            cpu = try enclave.cpu()
        } catch {
            throw SimError(error)
        }
        let entry = Enclave(enclave: enclave, cpu: cpu)
        enclaves[key] = entry
        return entry
    }

    func remove(fd: Int32) -> SimulatedEnclave? {
        guard let key = FileKey(fd: fd) else { return nil }
        native[key] = nil
        return enclaves.removeValue(forKey: key)?.enclave
    }

    // MARK: Devices without an enclave yet

    func addDevice(fd: Int32, machine: SimulatedMachine) throws(SimError) {
        guard let key = FileKey(fd: fd), let machineKey = FileKey(fd: machine.fd) else { throw .errno(EBADF) }
        devices[key] = machineKey
    }

    /// The machine of a device descriptor that has no enclave yet, or nil.
    func device(fd: Int32) -> SimulatedMachine? {
        guard let key = FileKey(fd: fd), let machineKey = devices[key] else { return nil }
        return machines[machineKey]
    }

    func removeDevice(fd: Int32) {
        if let key = FileKey(fd: fd) { devices[key] = nil }
    }

    // MARK: Native mappings

    func noteNativeMapping(fd: Int32, onDemand: Bool) {
        guard let key = FileKey(fd: fd) else { return }
        if onDemand {
            if case .onDemand = native[key] { return }
            native[key] = .onDemand(open: [:])
        } else {
            native[key] = .contents
        }
    }

    func nativeMapping(fd: Int32) -> NativeMapping? {
        FileKey(fd: fd).flatMap { native[$0] }
    }

    /// Records that the page at `page` is natively open to `prot`.
    func noteOpened(fd: Int32, page: UInt64, prot: Int32) {
        guard let key = FileKey(fd: fd), case .onDemand(var open) = native[key] else { return }
        open[page] = prot
        native[key] = .onDemand(open: open)
    }

    /// Closes the natively opened pages of an on-demand mapping in [start, end) (all by
    /// default): the TLB flush. Returns 0 or -errno of the first mprotect that failed.
    @discardableResult
    func flushNative(fd: Int32, from start: UInt64 = 0, to end: UInt64 = .max) -> Int32 {
        guard let key = FileKey(fd: fd), case .onDemand(var open) = native[key], !open.isEmpty else { return 0 }
        var rc: Int32 = 0
        // One mprotect per run of adjacent pages.
        let pages = open.keys.filter { $0 >= start && $0 < end }.sorted()
        var i = 0
        while i < pages.count {
            var j = i + 1
            while j < pages.count && pages[j] == pages[j - 1] + 4096 { j += 1 }
            if Glibc.mprotect(UnsafeMutableRawPointer(bitPattern: UInt(pages[i])), (j - i) * 4096, PROT_NONE) != 0, rc == 0 {
                rc = -errno
            }
            i = j
        }
        for page in pages { open[page] = nil }
        native[key] = .onDemand(open: open)
        return rc
    }
}

/// A failure of the C interface: an errno value.
struct SimError: Error {
    var code: Int32

    static func errno(_ code: Int32) -> SimError { SimError(code: code) }

    init(code: Int32) { self.code = code }

    /// How a simulator error reads as an errno.
    init(_ error: SimulatorError) {
        switch error {
        case .notARegion, .badMagic, .wrongKind, .unsupportedVersion, .sizeMismatch, .corruptHeader, .notSealed:
            code = EBADF
        case .wrongMachine: code = EXDEV
        case .enclaveReleased: code = ENXIO
        case .machineFull: code = ENOSPC
        case .tooManyAttachedProcesses: code = EMFILE
        case .invalidConfiguration: code = EINVAL
        case .contentsNotMapped: code = EFAULT
        case .system(_, let errno): code = errno
        }
    }
}
