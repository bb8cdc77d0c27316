/// Which limit refused an allocation.
public enum QuotaScope: String, Hashable, Sendable, CaseIterable {
    case enclave, uid, machine
    /// A Kubernetes container's quota, or the default for containers without one.
    case container
    /// A Kubernetes pod's quota, shared by its containers without one of their own.
    case pod
}

/// An allocation refused by a quota, with the numbers the client needs to understand why.
public struct QuotaRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    public var scope: QuotaScope
    public var askedPages: UInt64
    public var usedPages: UInt64
    public var limitPages: UInt64

    public init(scope: QuotaScope, askedPages: UInt64, usedPages: UInt64, limitPages: UInt64) {
        self.scope = scope
        self.askedPages = askedPages
        self.usedPages = usedPages
        self.limitPages = limitPages
    }

    public var description: String {
        "\(scope) quota exceeded: asked \(askedPages) pages, \(usedPages) used of \(limitPages)"
    }
}

/// EPC pages already charged in each scope when an allocation is checked. An enclave is charged
/// for every page it holds (`PageCounts.epcPages`, pool included); the uid and machine figures
/// are the sums over their enclaves.
public struct QuotaUsage: Hashable, Sendable {
    public var enclavePages: UInt64
    public var uidPages: UInt64
    public var machinePages: UInt64
    /// The enclave's Kubernetes scope, if its owner runs in a pod.
    public var scope: ScopeCharge?

    public init(enclavePages: UInt64, uidPages: UInt64, machinePages: UInt64, scope: ScopeCharge? = nil) {
        self.enclavePages = enclavePages
        self.uidPages = uidPages
        self.machinePages = machinePages
        self.scope = scope
    }
}

/// The pages charged to the Kubernetes scope whose quota binds an enclave, and that quota: the
/// container's own, else its pod's (shared by the pod's containers), else the default for
/// containers. The limit travels with the usage because it changes while enclaves run (an
/// admin sets and drops scopes), unlike the configured limits of `QuotaPolicy`.
public struct ScopeCharge: Hashable, Sendable {
    /// `.container` or `.pod`.
    public var scope: QuotaScope
    public var usedPages: UInt64
    /// nil: unlimited.
    public var limitPages: UInt64?

    public init(scope: QuotaScope, usedPages: UInt64, limitPages: UInt64?) {
        self.scope = scope
        self.usedPages = usedPages
        self.limitPages = limitPages
    }
}

/// Admission control for fresh EPC pages (reused pool pages are already charged). Limits are in
/// pages; nil means unlimited, which is every default: the daemon sets the machine limit to the
/// EPC size it manages, and operators set the others in the configuration.
///
/// Honest limit: EAUG happens when the enclave faults, so a quota only binds runtimes that ask
/// edmmd first.
public struct QuotaPolicy: Hashable, Sendable {
    public var enclaveLimit: UInt64?
    public var uidLimit: UInt64?
    public var machineLimit: UInt64?

    public init(enclaveLimit: UInt64? = nil, uidLimit: UInt64? = nil, machineLimit: UInt64? = nil) {
        self.enclaveLimit = enclaveLimit
        self.uidLimit = uidLimit
        self.machineLimit = machineLimit
    }

    /// Nil when `asked` more fresh pages fit every limit; otherwise the refusal of the narrowest
    /// scope that does not fit (enclave, then the Kubernetes scope, then uid, then machine).
    public func check(asked: UInt64, usage: QuotaUsage) -> QuotaRefusal? {
        for (scope, used, limit) in scopes(usage) {
            guard let limit else { continue }
            if used > limit || asked > limit - used {
                return QuotaRefusal(scope: scope, askedPages: asked, usedPages: used, limitPages: limit)
            }
        }
        return nil
    }

    /// The most fresh pages that fit every limit.
    public func headroom(usage: QuotaUsage) -> UInt64 {
        scopes(usage).reduce(UInt64.max) { room, scope in
            guard let limit = scope.limit else { return room }
            return Swift.min(room, limit > scope.used ? limit - scope.used : 0)
        }
    }

    private func scopes(_ usage: QuotaUsage) -> [(scope: QuotaScope, used: UInt64, limit: UInt64?)] {
        var scopes: [(scope: QuotaScope, used: UInt64, limit: UInt64?)] = [(.enclave, usage.enclavePages, enclaveLimit)]
        if let charge = usage.scope { scopes.append((charge.scope, charge.usedPages, charge.limitPages)) }
        scopes.append((.uid, usage.uidPages, uidLimit))
        scopes.append((.machine, usage.machinePages, machineLimit))
        return scopes
    }
}
