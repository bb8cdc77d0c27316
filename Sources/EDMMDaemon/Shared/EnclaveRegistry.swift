import EDMMProtocol
import Synchronization

/// Every registered enclave by handle. Lock-protected: sessions look handles up from their own
/// queues, enclaves remove themselves from theirs. Handles are never reused while the daemon runs.
///
/// It also holds each enclave's identity from REGISTER (or restore) until the enclave is gone, so
/// that one enclave never gets two ledgers (a second REGISTER of it would double its quota and
/// grant its accepted pages again as fresh).
final class EnclaveRegistry: Sendable {
    private struct State {
        var enclaves: [EnclaveHandle: EnclaveContext] = [:]
        var lastHandle: EnclaveHandle = 0
    }

    private struct Claim {
        let enclave: any OpenedEnclave
        let handle: EnclaveHandle
        let owner: UInt32
        /// The enclave while its REGISTER completes on its queue, before `insert`: an ATTACH of
        /// the handle a refused second REGISTER named must not miss it.
        let registering: EnclaveContext?
    }

    /// The claims by handle, and those whose device gives an identity key by that key, so that
    /// a simulated REGISTER costs one lookup however many enclaves are registered.
    private struct Claims {
        var byHandle: [EnclaveHandle: Claim] = [:]
        var byKey: [AnyHashable: EnclaveHandle] = [:]
    }

    private let state = Mutex(State(lastHandle: EnclaveRegistry.randomStart()))
    /// Apart from `state`: a claim may run one kcmp(2) per kernel enclave, which lookups need not wait for.
    private let claims = Mutex(Claims())

    /// Handles count up from a random point in [2^16, 2^47), a multiple of 2^16: a daemon that
    /// restarts without the FD store (which would restore its handles) must not hand an old
    /// handle to another enclave, or a reconnecting client would ATTACH a stranger's enclave.
    private static func randomStart() -> EnclaveHandle {
        UInt64.random(in: 1..<(1 << 31)) << 16
    }

    /// A handle no enclave of this daemon ever had (nor, barring a 2^-31 chance, one of an earlier daemon).
    func newHandle() -> EnclaveHandle {
        state.withLock { state in
            state.lastHandle += 1
            return state.lastHandle
        }
    }

    /// Handles up to `handle` were given out by an earlier run (FD store): never hand them out again.
    func reserveHandles(through handle: EnclaveHandle) {
        state.withLock { $0.lastHandle = max($0.lastHandle, handle) }
    }

    func insert(_ enclave: EnclaveContext) {
        state.withLock { $0.enclaves[enclave.handle] = enclave }
    }

    /// Claims the identity of `enclave` for `handle` (owned by `owner`; `registering`, when its
    /// REGISTER is still to complete), unless a registered or registering enclave already has it.
    func claim(
        _ enclave: any OpenedEnclave, for handle: EnclaveHandle, owner: UInt32, registering: EnclaveContext? = nil
    ) -> IdentityClaim {
        claims.withLock { claims in
            let claim = Claim(enclave: enclave, handle: handle, owner: owner, registering: registering)
            if let key = enclave.identityKey {
                if let holder = claims.byKey[key], let taken = claims.byHandle[holder] {
                    return .taken(by: taken.handle, owner: taken.owner)
                }
                claims.byKey[key] = handle
                claims.byHandle[handle] = claim
                return .claimed
            }
            var failure: IdentityUnknown?
            for other in claims.byHandle.values where other.enclave.identityKey == nil {
                do throws(IdentityUnknown) {
                    if try other.enclave.isSameEnclave(as: enclave) { return .taken(by: other.handle, owner: other.owner) }
                } catch {
                    failure = error
                }
            }
            claims.byHandle[handle] = claim
            return failure.map { .unchecked($0) } ?? .claimed
        }
    }

    /// The enclave is gone (or its registration failed): its handle and its identity are free.
    func remove(_ handle: EnclaveHandle) {
        claims.withLock { claims in
            guard let claim = claims.byHandle.removeValue(forKey: handle) else { return }
            if let key = claim.enclave.identityKey, claims.byKey[key] == handle { claims.byKey.removeValue(forKey: key) }
        }
        state.withLock { _ = $0.enclaves.removeValue(forKey: handle) }
    }

    func lookup(_ handle: EnclaveHandle) -> EnclaveContext? {
        state.withLock { $0.enclaves[handle] }
    }

    /// The enclave `handle` names, registered or still registering (ATTACH: what it queues on the
    /// enclave's queue runs after the REGISTER, and finds it active or gone).
    func lookupIncludingRegistering(_ handle: EnclaveHandle) -> EnclaveContext? {
        lookup(handle) ?? claims.withLock { $0.byHandle[handle]?.registering }
    }

    /// Every enclave, by handle.
    var all: [EnclaveContext] {
        state.withLock { $0.enclaves.values.sorted { $0.handle < $1.handle } }
    }

    var count: Int { state.withLock { $0.enclaves.count } }
}

/// How a claim on an enclave's identity went (`EnclaveRegistry.claim`).
enum IdentityClaim: Equatable {
    case claimed
    /// Another registration has it.
    case taken(by: EnclaveHandle, owner: UInt32)
    /// Claimed, but without comparing it to every enclave: the device could not tell (kcmp(2)).
    case unchecked(IdentityUnknown)
}
