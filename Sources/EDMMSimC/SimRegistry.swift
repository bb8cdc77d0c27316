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
    /// Enclaves whose contents this process also mapped natively (EDMM_SIM_MAP_CONTENTS).
    private var nativelyMapped: Set<FileKey> = []
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
        nativelyMapped = []
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
        nativelyMapped.remove(key)
        return enclaves.removeValue(forKey: key)?.enclave
    }

    func noteNativeMapping(fd: Int32) {
        if let key = FileKey(fd: fd) { nativelyMapped.insert(key) }
    }

    func hasNativeMapping(fd: Int32) -> Bool {
        FileKey(fd: fd).map { nativelyMapped.contains($0) } ?? false
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
