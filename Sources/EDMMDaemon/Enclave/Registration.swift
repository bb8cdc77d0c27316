import Dispatch
import EDMMCore
import EDMMProtocol

/// A REGISTER whose fields passed validation.
struct ValidatedRegistration: Sendable {
    var label: String
    var base: UInt64
    var size: UInt64
    var managed: PageRange
    var adopted: [PageRange]
    var preheatPages: UInt64

    /// Checks everything that does not need the descriptor.
    init(_ request: RegisterRequest, maxPreheatPages: UInt64) throws(WireError) {
        let labelBytes = request.label.utf8
        guard !labelBytes.isEmpty, labelBytes.count <= 64, labelBytes.allSatisfy(Self.isLabelByte) else {
            throw WireError(.invalidArgument, "label \"\(request.label)\" must be 1 to 64 bytes of [A-Za-z0-9._-]")
        }
        guard request.size >= Page.size, request.size & (request.size - 1) == 0 else {
            throw WireError(.invalidArgument, "ELRANGE size \(request.size) must be a power of two of at least 4096")
        }
        guard request.base % request.size == 0, request.base <= UInt64.max - request.size else {
            throw WireError(
                .invalidArgument,
                "ELRANGE base 0x\(String(request.base, radix: 16)) must be aligned to its size 0x\(String(request.size, radix: 16))")
        }
        let managed: PageRange
        if request.managed.length == 0 {
            guard request.managed.offset == 0 else {
                throw WireError(.invalidArgument, "a managed range of length 0 means all of ELRANGE; its offset must be 0")
            }
            managed = PageRange(first: 0, count: request.size >> Page.shift)
        } else {
            managed = try request.managed.pageRange(elrangeSize: request.size).get()
        }
        var adopted: [PageRange] = []
        for wire in request.adopted {
            let range = try wire.pageRange(elrangeSize: request.size).get()
            guard managed.contains(range) else {
                throw WireError(.outOfRange, "adopted range \(wire) is outside the managed range \(request.managed)")
            }
            adopted.append(range)
        }
        adopted.sort()
        for (lower, upper) in zip(adopted, adopted.dropFirst()) where lower.overlaps(upper) {
            throw WireError(.invalidArgument, "adopted ranges \(WireRange(lower)) and \(WireRange(upper)) overlap")
        }
        guard request.preheatPages <= maxPreheatPages else {
            throw WireError(
                .invalidArgument, "preheat of \(request.preheatPages) pages exceeds the limit of \(maxPreheatPages)",
                detail: .limit(limit: maxPreheatPages, actual: request.preheatPages))
        }
        label = request.label
        base = request.base
        size = request.size
        self.managed = managed
        self.adopted = adopted
        preheatPages = request.preheatPages
    }

    private static func isLabelByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}

extension EnclaveContext {
    /// Completes a REGISTER on the enclave's queue: adopts the enclave's accepted pages, grants the
    /// preheat, charges both to the quotas, and publishes the handle. On failure the descriptor is
    /// closed and nothing stays charged.
    func activate(_ registration: ValidatedRegistration, target: ReplyTarget) {
        onQueue { $0.activate(registration, target: target) }
    }
}

extension EnclaveState {
    func activate(_ registration: ValidatedRegistration, target: ReplyTarget) {
        let admitted: (adopted: [AdoptedState.Run], preheat: [PageRange])
        do throws(WireError) {
            admitted = try admit(registration)
        } catch {
            close(reason: "registration failed")
            target.session.deliver([Completion(target, .failure(error))])
            return
        }
        for range in admitted.preheat { freshUnaccepted.insert(range) }
        for run in admitted.adopted {
            if case .committed(_, unaccepted: true) = run.state { freshUnaccepted.insert(run.range) }
        }
        chargedPages = ledger.counts.epcPages
        phase = .active
        sessions[target.session.id] = target.session
        registrarID = target.session.id
        core.registry.insert(context)
        if let fdStore = core.fdStore, let descriptor = storableDescriptor { fdStore.enclaveRegistered(context, descriptor: descriptor) }
        core.counters.add(.enclavesRegistered)
        counters.record(.register, ok: true)
        publish()
        logger.info(
            "enclave registered",
            metadata: [
                "label": "\(identity.label)", "owner": "\(identity.owner)", "device": "\(identity.device)",
                "size": "\(identity.size)", "adopted": "\(admitted.adopted.reduce(0) { $0 + $1.range.count })",
                "preheat": "\(registration.preheatPages)",
            ])
        let reply = RegisterReply(
            enclave: handle, device: identity.device, quotaPages: settings.quota.enclaveLimit ?? .max,
            preheat: admitted.preheat.map(WireRange.init))
        target.session.deliver([Completion(target, .success(.register(reply)), attaching: context)])
    }

    /// Records the adopted pages as the EPCM shows them and grants the preheat, both admitted by
    /// the quotas under one lock; nothing changes when it throws.
    private func admit(_ registration: ValidatedRegistration) throws(WireError) -> (
        adopted: [AdoptedState.Run], preheat: [PageRange]
    ) {
        let owner = QuotaBook.Owner(identity.owner)
        // A host-only client's adopted pages exist already (EADD, or EAUG edmmd never saw) and the
        // kernel lets the enclave hold them, paging if it must: refusing them would only lose
        // their accounting. They are charged, not admitted; only a preheat is admitted.
        let adoptedAdmitted = !identity.committedIsLowerBound
        // The walk of the adopted ranges stops past the pages the quotas could admit: a REGISTER
        // buys no more work than its enclave may hold (the admission below decides).
        let headroom = settings.quota.headroom(usage: core.quotas.usage(handle, owner: owner))
        let adopted = try AdoptedState.runs(
            registration.adopted, in: device?.epcm,
            maxPages: adoptedAdmitted ? headroom - min(headroom, registration.preheatPages) : .max)
        let adoptedPages = adopted.reduce(0) { $0 + $1.range.count }
        let (asked, overflow) = (adoptedAdmitted ? adoptedPages : 0).addingReportingOverflow(registration.preheatPages)
        let charged = adoptedAdmitted ? 0 : adoptedPages
        let quota = settings.quota
        let preheat = try core.quotas.admit(handle, owner: owner) { (usage: QuotaUsage) throws(WireError) in
            var before = usage
            before.enclavePages &+= charged
            before.uidPages &+= charged
            before.machinePages &+= charged
            before.scope?.usedPages &+= charged
            if asked > 0 || overflow, let refusal = quota.check(asked: overflow ? .max : asked, usage: before) { throw WireError(refusal) }
            do throws(LedgerError) {
                for run in adopted { try ledger.adopt(run.range, as: run.state) }
            } catch {
                throw WireError(error)
            }
            var preheat: [PageRange] = []
            if registration.preheatPages > 0 {
                do throws(AllocationError) {
                    let grant = try ledger.allocate(
                        .anywhere(pages: registration.preheatPages), permissions: .rw, quota: QuotaPolicy(), growth: .disabled,
                        usage: usage)
                    preheat = grant.fresh
                } catch {
                    throw WireError(error)
                }
            }
            return (preheat, ledger.counts.epcPages)
        }
        return (adopted, preheat)
    }
}
