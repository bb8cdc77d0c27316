import Dispatch
import EDMMKubernetes
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
/// Concurrency: `queue` owns the `Writer` (the slots and the last state of each enclave);
/// `pending` (a mutex) and `frozen` (an atomic) are touched from enclave queues.
final class FDStoreKeeper: Sendable {
    let store: any DescriptorStore
    /// The state the previous daemon left, if any.
    let restored: PersistedState?
    private let logger: Logger
    private let queue = DispatchQueue(label: "edmmd.fdstore")
    private let timer: SendableSource<any DispatchSourceTimer>
    private let interval: Duration
    private let writer: QueueBound<Writer>
    private let pending: Mutex<Pending>
    /// Set when shutdown begins: enclaves closing from then on stay in the store.
    private let frozen = Atomic<Bool>(false)
    /// When the state was last written (Double bits of `WallClock.seconds`; 0: never), and how
    /// many writes failed: for the metrics.
    private let lastWrite = Atomic<UInt64>(0)
    private let writeFailures = Atomic<UInt64>(0)

    func figures(enclaves: Int, machine: Bool) -> FDStoreFigures {
        let written = lastWrite.load(ordering: .relaxed)
        return FDStoreFigures(
            descriptors: StateSlots.names.count + (machine ? 1 : 0) + enclaves,
            lastWriteSeconds: written == 0 ? nil : Double(bitPattern: written),
            writeFailures: writeFailures.load(ordering: .relaxed))
    }

    /// What the writes keep between them.
    private final class Writer {
        let slots: StateSlots
        /// Each enclave's state as last collected.
        var cache: [EnclaveHandle: PersistedState.Enclave] = [:]
        var scopes: [ContainerScope: ScopeRegistration] = [:]
        var collecting = false
        var writeFailed = false

        init(_ slots: StateSlots) { self.slots = slots }
    }

    private struct Pending {
        var changed: [EnclaveHandle: EnclaveContext] = [:]
        var lastHandle: EnclaveHandle
        /// The scopes as SET_SCOPE and DROP_SCOPE left them, when they changed since the last write.
        var scopes: [ContainerScope: ScopeRegistration]?

        mutating func takeScopes() -> [ContainerScope: ScopeRegistration]? {
            defer { scopes = nil }
            return scopes
        }
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
        let writer = Writer(slots)
        writer.scopes = restored?.scopes ?? [:]
        self.writer = QueueBound(writer, queue: queue)
        self.restored = restored
        self.logger = logger
        self.interval = interval
        pending = Mutex(Pending(lastHandle: restored?.lastHandle ?? 0))
        timer = .timer(on: queue)
        timer.activateIdle { [weak self] in self?.persistChanges() }
    }

    /// Starts writing changes (restored enclaves are already in `cache` through `enclaveChanged`).
    func start() {
        let micros = Int(interval.microsecondsClamped)
        timer.source.schedule(
            deadline: .now() + .microseconds(micros), repeating: .microseconds(micros), leeway: .microseconds(micros / 10))
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

    /// The Kubernetes scopes changed (SET_SCOPE, DROP_SCOPE): record them soon.
    func scopesChanged(_ scopes: [ContainerScope: ScopeRegistration]) {
        pending.withLock { $0.scopes = scopes }
    }

    static func name(_ handle: EnclaveHandle) -> String { "enclave-\(handle)" }

    // MARK: Writing (queue)

    private func persistChanges() {
        let writer = self.writer.value
        guard !writer.collecting else { return }
        let (changed, scopes) = pending.withLock { p in
            defer { p.changed = [:] }
            return (Array(p.changed.values), p.takeScopes())
        }
        if let scopes { writer.scopes = scopes }
        guard !changed.isEmpty else {
            if scopes != nil, !frozen.load(ordering: .acquiring) { write(clean: false) }
            return
        }
        writer.collecting = true
        collect(changed) { states in
            let writer = self.writer.value
            writer.collecting = false
            guard !self.frozen.load(ordering: .acquiring) else { return }
            for (handle, state) in states { writer.cache[handle] = state }
            self.write(clean: false)
        }
    }

    /// Shutdown: stops the periodic writes and writes every enclave's final state, marked clean.
    /// Enclaves closed after this stay in the store.
    func finish(_ enclaves: [EnclaveContext]) async {
        frozen.store(true, ordering: .releasing)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.timer.source.cancel()
                if let scopes = self.pending.withLock({ $0.takeScopes() }) { self.writer.value.scopes = scopes }
                self.collect(enclaves) { states in
                    let writer = self.writer.value
                    writer.cache = [:]
                    for (handle, state) in states { writer.cache[handle] = state }
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
        let writer = self.writer.value
        let state = PersistedState(
            lastHandle: pending.withLock { $0.lastHandle }, cleanShutdown: clean,
            enclaves: writer.cache.keys.sorted().compactMap { writer.cache[$0] }, scopes: writer.scopes)
        switch writer.slots.write(state.encoded()) {
        case .success:
            lastWrite.store(WallClock.seconds.bitPattern, ordering: .relaxed)
            if writer.writeFailed { logger.notice("the FD store's state is written again") }
            writer.writeFailed = false
        case .failure(let error):
            writeFailures.add(1, ordering: .relaxed)
            if !writer.writeFailed { logger.error("cannot write the FD store's state (\(error)); a restart would find it out of date") }
            writer.writeFailed = true
        }
    }
}
