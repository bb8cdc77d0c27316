import ArgumentParser
import EDMMClient
import EDMMProtocol

/// `edmmctl scopes`: the Kubernetes pods and containers edmmd knows, with their quotas.
struct ScopesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scopes",
        abstract: "List the Kubernetes pods and containers edmmd knows, with their EPC quotas and use.",
        discussion: """
            With [kubernetes] enabled, edmmd keys quotas and ownership on pods and containers \
            (docs/kubernetes.md). A scope is known when `edmmctl nri-hook` registered it \
            (REGISTERED yes) or when one of its processes registered an enclave. QUOTA is the \
            scope's own quota ("-": none), LIMIT the one its enclaves are checked against: a \
            container's own, else its pod's (shared by the pod's containers), else edmmd's \
            default_container_quota. USED counts the EPC its enclaves hold (a pod's row: all \
            its containers'). Root and the admin group on the host see every scope, a process \
            in a pod its own pod's.

            --json prints {"scopes": [...]}, each with "pod_uid", "container_id" (null for the \
            pod), "namespace", "pod", "container", "quota_pages" and "limit_pages" (null: \
            none, unlimited), "used_pages", "enclaves" (ids) and "registered".
            """)

    @OptionGroup var global: GlobalOptions

    struct Row: Encodable {
        var podUid: String
        var containerId: String?
        var namespace: String
        var pod: String
        var container: String
        var quotaPages: UInt64?
        var limitPages: UInt64?
        var usedPages: UInt64
        var enclaves: [UInt64]
        var registered: Bool

        init(_ s: ScopeSummary) {
            podUid = s.podUID
            containerId = s.containerID.isEmpty ? nil : s.containerID
            namespace = s.namespace
            pod = s.pod
            container = s.container
            quotaPages = s.quotaPages == .max ? nil : s.quotaPages
            limitPages = s.effectiveQuotaPages == .max ? nil : s.effectiveQuotaPages
            usedPages = s.usedPages
            enclaves = s.enclaves
            registered = s.registered
        }

        // Explicit so that nil is written as null rather than left out.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(podUid, forKey: .podUid)
            try c.encode(containerId, forKey: .containerId)
            try c.encode(namespace, forKey: .namespace)
            try c.encode(pod, forKey: .pod)
            try c.encode(container, forKey: .container)
            try c.encode(quotaPages, forKey: .quotaPages)
            try c.encode(limitPages, forKey: .limitPages)
            try c.encode(usedPages, forKey: .usedPages)
            try c.encode(enclaves, forKey: .enclaves)
            try c.encode(registered, forKey: .registered)
        }

        private enum CodingKeys: String, CodingKey {
            case podUid, containerId, namespace, pod, container, quotaPages, limitPages, usedPages, enclaves, registered
        }
    }

    struct Listing: Encodable { var scopes: [Row] }

    func run() async throws {
        let scopes = try await DaemonSession.with(global) { connection throws(EDMMClientError) in try await connection.allScopes() }
        let rows = scopes.map(Row.init)
        if global.json {
            print(jsonText(Listing(scopes: rows)))
            return
        }
        guard !rows.isEmpty else {
            print("no Kubernetes scopes known (edmmd without [kubernetes] enabled, or none visible here)")
            return
        }
        var table = Table([
            ("POD UID", .left), ("NAMESPACE/POD", .left), ("CONTAINER", .left), ("ID", .left), ("QUOTA", .right), ("LIMIT", .right),
            ("USED", .right), ("ENCLAVES", .right), ("REGISTERED", .left),
        ])
        for row in rows {
            table.rows.append([
                row.podUid, row.pod.isEmpty ? "-" : "\(row.namespace)/\(row.pod)",
                row.containerId == nil ? "(pod)" : row.container.isEmpty ? "-" : row.container,
                row.containerId.map { String($0.prefix(12)) } ?? "-", row.quotaPages.map(pageBytes) ?? "-",
                row.limitPages.map(pageBytes) ?? "unlimited", pageBytes(row.usedPages), "\(row.enclaves.count)",
                row.registered ? "yes" : "no",
            ])
        }
        print(table.lines().joined(separator: "\n"))
    }
}
