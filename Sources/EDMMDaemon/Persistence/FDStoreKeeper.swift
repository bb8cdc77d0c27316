import Dispatch
import EDMMProtocol
import Glibc
import Logging
import Synchronization

/// Keeps the service manager's FD store in step with the daemon, so that a restarted edmmd finds
/// every registered enclave with its ledger and counters:
/// - each registered enclave's descriptor is stored as `enclave-<handle>` when it registers and
///   removed (FDSTOREREMOVE) when it is unregistered; at shutdown they all stay;
/// - in simulated mode the machine's memfd is stored as `machine` (a restarted daemon that made
///   a new simulated EPC could not open the enclaves, which belong to the old one);
/// - `state.0`/`state.1` (`StateSlots`) hold every enclave's record and counters.
///
/// When the state is written: within `interval` (100 ms) of any change to an enclave (ledger,
/// counters, registration), re-recording only the enclaves that changed, each on its own queue;
/// and once more at shutdown, after every queue drained and every connection closed, marked
/// clean. A clean state is exact: every request was either answered before it was written or
/// never applied. After a crash the state may be up to one interval old; the restore then settles
/// pool pages as committed (`EnclaveContext.restore`), the one place where an old state could make
/// edmmd trim pages an enclave uses. Writing every change synchronously would put a copy of the
/// whole ledger on every request's path; 100 ms bounds the staleness without that.
///
/// Concurrency: `queue` owns `slots`, `cache`, `collecting` and `writeFailed`; `pending` (a
/// mutex) and `frozen` (an atomic) are touched from enclave queues.
final class FDStoreKeeper: @unchecked Sendable {
    let store: any DescriptorStore
    /// The state the previous daemon left, if any.
    let restored: PersistedState?
    private let logger: Logger
    private let queue = DispatchQueue(label: "edmmd.fdstore")
    private let timer: any DispatchSourceTimer
    private let interval: Duration
    private let slots: StateSlots
    private var cache: [EnclaveHandle: PersistedState.Enclave] = [:]
    private var collecting = false
    private var writeFailed = false
    private let pending: Mutex<Pending>
    /// Set when shutdown begins: enclaves closing from then on stay in the store.
    private let frozen = Atomic<Bool>(false)

    private struct Pending {
        var changed: [EnclaveHandle: EnclaveContext] = [:]
        var lastHandle: EnclaveHandle
    }

    /// Takes `state.0`/`state.1` out of `stored` (or creates them) and stores them. nil, with a
    /// log line, when the state cannot be kept: the daemon then runs without the FD store.
    static func open(
        store: any DescriptorStore, stored: inout [String: Int32], logger: Logger, interval: Duration = .milliseconds(100)
    ) -> FDStoreKeeper? {
        let slots: StateSlots
        if let first = stored.removeValue(forKey: StateSlots.names[0]), let second = stored.removeValue(forKey: StateSlots.names[1]) {
            slots = StateSlots(first, second)
        } else {
            // One slot alone is no state; forget it, also in the store, before storing new ones.
            for name in StateSlots.names {
                stored.removeValue(forKey: name).map { _ = Glibc.close($0) }
                store.remove(name: name)
            }
            switch StateSlots.create() {
            case .failure(let error):
                logger.error("FD store disabled: cannot create the state memfds: \(error)")
                return nil
            case .success(let made): slots = made
            }
        }
        for (fd, name) in zip(slots.descriptors, StateSlots.names) where !store.store(fd, name: name) {
            logger.warning("FD store disabled: the service manager did not take the state descriptor \(name)")
            return nil
        }
        var restored: PersistedState?
        if let bytes = slots.readNewest() {
            do {
                restored = try PersistedState(decoding: bytes)
            } catch {
                logger.error("the stored state does not decode (\(error)); starting without the previous enclaves")
            }
        }
        return FDStoreKeeper(store: store, slots: slots, restored: restored, logger: logger, interval: interval)
    }

    private init(store: any DescriptorStore, slots: StateSlots, restored: PersistedState?, logger: Logger, interval: Duration) {
        self.store = store
        self.slots = slots
        self.restored = restored
        self.logger = logger
        self.interval = interval
        pending = Mutex(Pending(lastHandle: restored?.lastHandle ?? 0))
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { @Sendable [weak self] in self?.persistChanges() }
        timer.schedule(deadline: .distantFuture)
        timer.activate()
    }

    /// Starts writing changes (restored enclaves are already in `cache` through `enclaveChanged`).
    func start() {
        let micros = Int(interval.microsecondsClamped)
        timer.schedule(deadline: .now() + .microseconds(micros), repeating: .microseconds(micros), leeway: .microseconds(micros / 10))
    }

    /// Stores the simulated machine's memfd (a descriptor already stored is not stored twice).
    func storeMachine(_ fd: Int32) {
        if !store.store(fd, name: "machine") {
            logger.warning("the service manager did not take the simulated EPC's descriptor: a restart will lose every enclave")
        }
    }

    /// The daemon took over another simulated EPC (HELLO with the machine flag): store that one.
    func replaceMachine(_ fd: Int32) {
        store.remove(name: "machine")
        storeMachine(fd)
    }

    // MARK: From enclave queues

    /// A REGISTER completed (enclave queue): keep its descriptor.
    func enclaveRegistered(_ enclave: EnclaveContext, descriptor: Int32) {
        if !store.store(descriptor, name: Self.name(enclave.handle)) {
            logger.warning("the service manager did not take enclave \(enclave.handle)'s descriptor: a restart will lose it")
        }
        pending.withLock { $0.lastHandle = max($0.lastHandle, enclave.handle) }
        enclaveChanged(enclave)
    }

    /// The enclave's ledger, counters or registration changed: record it again soon.
    func enclaveChanged(_ enclave: EnclaveContext) {
        pending.withLock { $0.changed[enclave.handle] = enclave }
    }

    /// The enclave was unregistered: drop its descriptor, unless the daemon is stopping (the
    /// next daemon takes it over).
    func enclaveClosed(_ enclave: EnclaveContext) {
        guard !frozen.load(ordering: .acquiring) else { return }
        store.remove(name: Self.name(enclave.handle))
        enclaveChanged(enclave)
    }

    static func name(_ handle: EnclaveHandle) -> String { "enclave-\(handle)" }

    // MARK: Writing (queue)

    private func persistChanges() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !collecting else { return }
        let changed = pending.withLock { p in
            defer { p.changed = [:] }
            return Array(p.changed.values)
        }
        guard !changed.isEmpty else { return }
        collecting = true
        collect(changed) { states in
            self.collecting = false
            guard !self.frozen.load(ordering: .acquiring) else { return }
            for (handle, state) in states { self.cache[handle] = state }
            self.write(clean: false)
        }
    }

    /// Shutdown: stops the periodic writes and writes every enclave's final state, marked clean.
    /// Enclaves closed after this stay in the store.
    func finish(_ enclaves: [EnclaveContext]) async {
        frozen.store(true, ordering: .releasing)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.timer.cancel()
                self.collect(enclaves) { states in
                    self.cache = [:]
                    for (handle, state) in states { self.cache[handle] = state }
                    self.write(clean: true)
                    continuation.resume()
                }
            }
        }
    }

    /// Each enclave's state, taken on its own queue; `completion` runs on `queue`.
    private func collect(
        _ enclaves: [EnclaveContext], completion: @escaping @Sendable ([(EnclaveHandle, PersistedState.Enclave?)]) -> Void
    ) {
        let group = DispatchGroup()
        let states = Mutex<[(EnclaveHandle, PersistedState.Enclave?)]>([])
        for enclave in enclaves {
            group.enter()
            enclave.persistentState { state in
                states.withLock { $0.append((enclave.handle, state)) }
                group.leave()
            }
        }
        group.notify(queue: queue) { completion(states.withLock { $0 }) }
    }

    private func write(clean: Bool) {
        dispatchPrecondition(condition: .onQueue(queue))
        let state = PersistedState(
            lastHandle: pending.withLock { $0.lastHandle }, cleanShutdown: clean,
            enclaves: cache.keys.sorted().compactMap { cache[$0] })
        switch slots.write(state.encoded()) {
        case .success:
            if writeFailed { logger.notice("the FD store's state is written again") }
            writeFailed = false
        case .failure(let error):
            if !writeFailed { logger.error("cannot write the FD store's state (\(error)); a restart would find it out of date") }
            writeFailed = true
        }
    }
}
