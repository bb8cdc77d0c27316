import EDMMConfig
import EDMMCore
import EDMMDaemon
import EDMMKubernetes
import EDMMProtocol

/// The `enclave` label of every registered enclave, chosen when a scrape first sees it and kept
/// for its life, so that its series never change identity:
/// - `label`: the label the client registered (the handle when it is empty); `hash`: 16 hex
///   digits of FNV-1a over it; `none`: the handle. A label is chosen by its client and may be sensitive (docs/observability.md).
/// - Labels need not be unique: an enclave whose name another enclave of the same uid already
///   has gets `name#handle`. It keeps that name after the other one leaves: its counters must
///   not jump onto another series.
/// The handle itself (which changes when an enclave registers again) is in `edmmd_enclave_info`.
struct EnclaveNames {
    struct Entry {
        var uid: UInt32
        var name: String
        /// `enclave="...",uid="..."`, shared by every per-enclave series.
        var labels: LabelSet
        /// The same, then `enclave_id`, `pid` and (policy `label`) `label`.
        var info: LabelSet
    }

    private(set) var policy = DaemonConfig.EnclaveLabels.label
    private var entries: [EnclaveHandle: Entry] = [:]

    /// Names `enclaves` (in handle order), forgetting the ones gone. A new policy renames all.
    mutating func update(_ enclaves: [EnclaveSnapshot], policy: DaemonConfig.EnclaveLabels) -> [(EnclaveSnapshot, Entry)] {
        if policy != self.policy {
            self.policy = policy
            entries = [:]
        }
        let present = Set(enclaves.map(\.handle))
        entries = entries.filter { present.contains($0.key) }
        var taken = Set(entries.values.map { "\($0.uid)/\($0.name)" })
        return enclaves.sorted { $0.handle < $1.handle }.map { enclave in
            if let entry = entries[enclave.handle] { return (enclave, entry) }
            var name = baseName(enclave)
            if taken.contains("\(enclave.owner.uid)/\(name)") { name += "#\(enclave.handle)" }
            taken.insert("\(enclave.owner.uid)/\(name)")
            let labels = LabelSet([("enclave", name), ("uid", "\(enclave.owner.uid)")])
            var extra = [("enclave_id", "\(enclave.handle)"), ("pid", "\(enclave.owner.pid)")]
            if policy == .label { extra.append(("label", enclave.label)) }
            let entry = Entry(uid: enclave.owner.uid, name: name, labels: labels, info: labels.appending(extra))
            entries[enclave.handle] = entry
            return (enclave, entry)
        }
    }

    private func baseName(_ enclave: EnclaveSnapshot) -> String {
        switch policy {
        case .label where !enclave.label.isEmpty: enclave.label
        case .hash: Self.hash(enclave.label)
        case .label, .none: "\(enclave.handle)"
        }
    }

    /// FNV-1a, 64 bits, as 16 hex digits: a stable pseudonym, not a secret.
    static func hash(_ label: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in label.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// The per-uid and per-enclave families of one scrape, limited to what `viewer` may see.
enum OwnerSeries {
    static func writeUIDs(_ snapshot: DaemonSnapshot, viewer: MetricsViewer, into writer: inout ExpositionWriter) {
        var byUID: [UInt32: (enclaves: UInt64, pages: UInt64)] = [:]
        for enclave in snapshot.enclaves where viewer.sees(enclave.owner) {
            byUID[enclave.owner.uid, default: (0, 0)].enclaves += 1
            byUID[enclave.owner.uid, default: (0, 0)].pages += enclave.pages.epcPages
        }
        let uids = byUID.keys.sorted().map { (uid: $0, labels: LabelSet([("uid", "\($0)")]), figures: byUID[$0]!) }
        writer.family(MetricCatalog.uidEnclaves)
        for uid in uids { writer.sample(MetricCatalog.uidEnclaves, uid.labels, uid.figures.enclaves) }
        writer.family(MetricCatalog.uidEPC)
        for uid in uids { writer.sample(MetricCatalog.uidEPC, uid.labels, Page.bytes(uid.figures.pages)) }
        writer.family(MetricCatalog.uidQuota)
        for uid in uids {
            if let limit = snapshot.quotas.uidPages(for: uid.uid) { writer.sample(MetricCatalog.uidQuota, uid.labels, Page.bytes(limit)) }
        }
    }

    /// The Kubernetes containers `viewer` may see. A container without names from SET_SCOPE
    /// shows its pod's UID and the first 12 digits of its ID, so that its series still join.
    static func writeContainers(_ snapshot: DaemonSnapshot, viewer: MetricsViewer, into writer: inout ExpositionWriter) {
        let containers = snapshot.containers.filter { viewer.sees(PeerCredentials(pid: 0, uid: 0, gid: 0, scope: $0.scope)) }.map {
            container in
            let pod = container.pod.isEmpty ? container.scope.podUID : container.pod
            let name = container.container.isEmpty ? ContainerScope.shortID(container.scope.containerID ?? "") : container.container
            return (figures: container, labels: LabelSet([("namespace", container.namespace), ("pod", pod), ("container", name)]))
        }
        writer.family(MetricCatalog.containerEnclaves)
        for c in containers { writer.sample(MetricCatalog.containerEnclaves, c.labels, UInt64(c.figures.enclaves)) }
        writer.family(MetricCatalog.containerEPC)
        for c in containers { writer.sample(MetricCatalog.containerEPC, c.labels, Page.bytes(c.figures.pages)) }
        writer.family(MetricCatalog.containerQuota)
        for c in containers {
            if let limit = c.figures.limitPages { writer.sample(MetricCatalog.containerQuota, c.labels, Page.bytes(limit)) }
        }
    }

    /// Family by family (the text format wants each family's samples together).
    static func writeEnclaves(_ named: [(EnclaveSnapshot, EnclaveNames.Entry)], into writer: inout ExpositionWriter) {
        func each(_ spec: MetricSpec, _ value: (EnclaveSnapshot) -> UInt64?, info: Bool = false) {
            writer.family(spec)
            for (enclave, entry) in named {
                if let value = value(enclave) { writer.sample(spec, info ? entry.info : entry.labels, value) }
            }
        }
        each(MetricCatalog.enclaveInfo, { _ in 1 }, info: true)
        each(MetricCatalog.enclaveEPC) { Page.bytes($0.pages.epcPages) }
        each(MetricCatalog.enclaveCommitted) { Page.bytes($0.pages.committed + $0.pages.restrictQueued + $0.pages.tcsQueued) }
        each(MetricCatalog.enclaveCommittedLowerBound) { $0.identity.committedIsLowerBound ? 1 : 0 }
        each(MetricCatalog.enclavePool) { Page.bytes($0.pages.pooled) }
        each(MetricCatalog.enclaveTrimming) { Page.bytes($0.pages.trimming + $0.pages.removing) }
        each(MetricCatalog.enclaveQuota) { $0.quotaPages.map(Page.bytes) }
        each(MetricCatalog.enclaveRequests) { $0.counters.requests }
        each(MetricCatalog.enclaveFailures) { $0.counters.requestsFailed.reduce(0, +) }
        each(MetricCatalog.enclaveIoctls) { $0.counters.ioctls }
        each(MetricCatalog.enclaveIoctlErrors) { $0.counters.ioctlErrors }
        each(MetricCatalog.enclaveReclaimed) { Page.bytes($0.counters.reclaimedPages) }
    }
}

extension Verb {
    /// The verb in lower case (`trim_accepted`), as in label values and STATS counter names.
    var metricName: String { "\(self)".lowercased() }
}
