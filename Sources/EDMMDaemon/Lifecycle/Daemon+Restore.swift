import EDMMProtocol
import EDMMSystem
import Glibc
import Logging

/// Start-up after a restart: taking over what the FD store kept.
extension Daemon {
    /// Re-creates every enclave of the stored state whose descriptor was stored too. An enclave
    /// without its descriptor, or whose descriptor no longer opens, is dropped (its client gets
    /// unknown-enclave on ATTACH and registers again); so is a descriptor without a record.
    static func restoreEnclaves(_ keeper: FDStoreKeeper, from stored: inout [String: Int32], core: DaemonCore, grace: Duration) {
        let logger = core.logger
        guard let state = keeper.restored else { return }
        core.registry.reserveHandles(through: state.lastHandle)
        if !state.scopes.isEmpty {
            core.quotas.restoreScopes(state.scopes)
            logger.notice("restored \(state.scopes.count) Kubernetes scopes from the FD store")
        }
        var restored = 0
        for saved in state.enclaves {
            let name = FDStoreKeeper.name(saved.record.handle)
            guard let fd = stored.removeValue(forKey: name) else {
                logger.warning("enclave \(saved.record.handle) (\(saved.record.label)) has a record but no stored descriptor; dropped")
                continue
            }
            let drop = { (why: String) in
                logger.warning("enclave \(saved.record.handle) (\(saved.record.label)) cannot be restored: \(why); dropped")
                keeper.store.remove(name: name)
            }
            let device: any OpenedEnclave
            do throws(WireError) {
                device = try core.backend.openEnclave(OwnedDescriptor(fd))
            } catch {
                drop(error.message)
                continue
            }
            guard device.kind == saved.record.device else {
                drop("it was a \(saved.record.device) enclave, its descriptor is \(device.kind)")
                continue
            }
            // A state written before edmmd refused a second REGISTER of one enclave may hold it twice.
            if case .taken(let first, owner: _) = core.registry.claim(device, for: saved.record.handle, owner: saved.record.owner.uid) {
                device.close()
                drop("it is the same enclave as the restored enclave \(first)")
                continue
            }
            do {
                _ = try EnclaveContext.restore(saved, device: device, core: core, settlePool: !state.cleanShutdown, grace: grace)
                restored += 1
            } catch {
                core.registry.remove(saved.record.handle)
                device.close()
                drop("its ledger does not rebuild: \(error)")
            }
        }
        for name in stored.keys where name.hasPrefix("enclave-") {
            if let fd = stored.removeValue(forKey: name) { Glibc.close(fd) }
            keeper.store.remove(name: name)
        }
        let unclean = state.cleanShutdown ? "" : "; the previous daemon did not stop cleanly, so their pool pages are kept as committed"
        logger.notice("restored \(restored) of \(state.enclaves.count) enclaves from the FD store\(unclean)")
    }
}
