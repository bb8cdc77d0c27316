import EDMMProtocol
import SGXSimulator
import Synchronization

/// The daemon's simulated EPC. A daemon starts with a machine of its own; a restarted daemon
/// whose clients' enclaves live in the machine of its predecessor takes that machine over when a
/// client offers it in HELLO, as long as no enclave is open in the current one (docs/protocol.md,
/// HELLO). One lock orders that swap against every enclave the daemon opens.
///
/// That lock is never held while waiting for the machine's own lock, which any client can hold
/// (a client stopped in a debugger holds it for as long as it is stopped): STATUS and HELLO read
/// the machine through it on queues that serve everyone.
final class SimulatedEPC: Sendable {
    private let state: Mutex<State>

    private struct State {
        var machine: SimulatedMachine
        /// Enclaves this daemon opened in `machine`; the swap needs every one closed.
        var opened: [WeakEnclave] = []
        /// Enclaves being opened (outside the lock); the swap needs none.
        var opening = 0

        mutating func openCount() -> Int {
            opened.removeAll { $0.enclave?.isClosed ?? true }
            return opened.count + opening
        }
    }

    private struct WeakEnclave {
        weak var enclave: SimulatedEnclave?
    }

    init(_ machine: SimulatedMachine) {
        state = Mutex(State(machine: machine))
    }

    var machine: SimulatedMachine { state.withLock { $0.machine } }

    /// Opens a simulated enclave of the current machine from a client's descriptor.
    func openEnclave(fd: Int32) throws(SimulatorError) -> SimulatedEnclave {
        let machine = state.withLock { state in
            state.opening += 1
            return state.machine
        }
        // Attaching takes the machine lock: wait for it here, not under `state`.
        let opened: Result<SimulatedEnclave, SimulatorError>
        do {
            opened = .success(try SimulatedEnclave.open(fd: fd, machine: machine, mapContents: false))
        } catch {
            opened = .failure(error)
        }
        state.withLock { state in
            state.opening -= 1
            if case .success(let enclave) = opened { state.opened.append(WeakEnclave(enclave: enclave)) }
        }
        return try opened.get()
    }

    /// The machine a client offered in HELLO: the current one, or (validated) its replacement when
    /// no enclave is open in the current one. `fd` stays the caller's.
    func adopt(fd: Int32) throws(WireError) -> SimulatedMachine {
        let offered: SimulatedMachine
        do {
            offered = try SimulatedMachine.open(fd: fd)
        } catch {
            throw WireError(.badDescriptor, "the descriptor HELLO carried is not a simulated EPC: \(error)")
        }
        return try state.withLock { (state: inout State) throws(WireError) -> SimulatedMachine in
            let current = state.machine
            if offered.uuidString == current.uuidString { return current }
            guard offered.supportsSGX2 else {
                throw WireError(.badDescriptor, "the simulated EPC HELLO carried models an SGX1-only CPU")
            }
            guard offered.epcPages == current.epcPages else {
                throw WireError(
                    .badDescriptor,
                    "the simulated EPC HELLO carried has \(offered.epcPages) pages; this edmmd is configured for \(current.epcPages)")
            }
            let open = state.openCount()
            guard open == 0 else {
                throw WireError(
                    .badDescriptor,
                    """
                    edmmd already serves \(open) enclaves in its simulated EPC \(current.uuidString); it cannot take over \
                    \(offered.uuidString)
                    """
                )
            }
            state.machine = offered
            // The predecessor's attachments belong to a dead process: drop them (and release the
            // enclaves nobody alive holds any more), unless a client holds the machine lock now:
            // then the supervisor's sweep does it later.
            _ = offered.sweepDeadEnclavesIfIdle()
            return offered
        }
    }
}
