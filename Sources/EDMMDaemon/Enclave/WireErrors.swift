import EDMMCore
import EDMMProtocol
import EDMMSystem
import SGXDevice

/// How the model's errors reach a client.
extension WireError {
    /// REGISTER of an enclave edmmd already manages (as `handle`, for uid `owner`): one enclave
    /// has one ledger. Its owner (and root) are pointed to ATTACH; anyone else learns no handle.
    static func alreadyRegistered(_ handle: EnclaveHandle, owner: UInt32, asker: PeerCredentials) -> WireError {
        guard owner == asker.uid || asker.isRoot else {
            return WireError(.notOwner, "this enclave is already registered by uid \(owner); only that uid (or root) may use it")
        }
        return WireError(
            .invalidArgument,
            """
            this enclave is already registered as enclave \(handle) (one enclave, one ledger); use ATTACH \(handle) to use it from \
            another connection
            """
        )
    }

    init(_ error: LedgerError) {
        switch error {
        case .outOfManagedRange(let range, let managed):
            self.init(
                .outOfRange,
                "\(WireRange(range)) is outside the managed range \(WireRange(managed)) of this enclave")
        case .wrongState(let operation, let page, let actual):
            self.init(
                .invalidPageState, "\(operation) not allowed: page at offset \(hexOffset(page)) is \(actual.stateDescription)",
                detail: .page(offset: page << Page.shift, state: actual.stateDescription))
        case .pendingWork(let operation, let page, let actual):
            self.init(
                .invalidPageState, "\(operation) overlaps queued work: page at offset \(hexOffset(page)) is \(actual)",
                detail: .page(offset: page << Page.shift, state: actual.description))
        case .invalidPermissions(let operation, let permissions):
            self.init(.invalidArgument, "\(operation) with permissions \(permissions): SGX requires R with W")
        case .zeroPages(let operation):
            self.init(.notAligned, "\(operation) of zero pages")
        case .noContiguousSpace(let pages, let managed):
            self.init(
                .outOfRange, "no run of \(pages) free pages in the managed range \(WireRange(managed))")
        }
    }

    init(_ refusal: QuotaRefusal) {
        let scope: EDMMProtocol.QuotaScope =
            switch refusal.scope {
            case .enclave: .enclave
            case .uid: .uid
            case .machine: .machine
            case .container: .container
            case .pod: .pod
            }
        self.init(
            .quotaExceeded,
            "\(scope) quota exceeded: asked \(refusal.askedPages) pages, \(refusal.usedPages) of \(refusal.limitPages) in use",
            detail: .quota(
                scope: scope, askedPages: refusal.askedPages, usedPages: refusal.usedPages, limitPages: refusal.limitPages))
    }

    init(_ error: AllocationError) {
        switch error {
        case .ledger(let error): self.init(error)
        case .quota(let refusal): self.init(refusal)
        }
    }

    /// A failed ioctl, as the request that held the failing page sees it.
    init(_ failure: RequestFailure) {
        let ioctl = WireIoctl(failure.operation)
        let result: UInt64? = ioctl == .removePages ? nil : failure.result
        self.init(
            .kernelError,
            "\(ioctl) failed with \(ErrnoName.of(failure.errno)) after \(failure.count) bytes of this request"
                + (result.map { ", SGX result \($0)" + (SGXErrorCode.name($0).map { " (\($0))" } ?? "") } ?? ""),
            detail: .kernel(ioctl: ioctl, errno: failure.errno, countBytes: failure.count, result: result))
    }
}

func hexOffset(_ page: UInt64) -> String { "0x" + String(page << Page.shift, radix: 16) }
