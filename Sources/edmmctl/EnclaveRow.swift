import EDMMCore
import EDMMProtocol

/// One enclave as `enclaves` and `show` print it; the JSON keys are the snake_case field names.
struct EnclaveRow: Encodable {
    var id: UInt64
    var label: String
    var uid: UInt32
    var gid: UInt32
    var pid: UInt32
    var device: String
    var base: UInt64
    var sizeBytes: UInt64
    var committedPages: UInt64
    var lazyPoolPages: UInt64
    var trimmingPages: UInt64
    var removingPages: UInt64
    var tcsPages: UInt64
    /// nil (JSON null): unlimited.
    var quotaPages: UInt64?
    var connections: UInt32
    var requests: UInt64
    var ioctls: UInt64
    var idleSeconds: Double
    /// The Kubernetes pod the enclave belongs to (nil: a host enclave).
    var namespace: String?
    var pod: String?
    var container: String?

    init(_ s: EnclaveSummary, placement: ScopePlacement = ScopePlacement([])) {
        id = s.enclave
        label = s.label
        uid = s.uid
        gid = s.gid
        pid = s.pid
        device = s.device.description
        base = s.base
        sizeBytes = s.size
        committedPages = s.committedPages
        lazyPoolPages = s.pooledPages
        trimmingPages = s.trimmingPages
        removingPages = s.removingPages
        tcsPages = s.tcsPages
        quotaPages = s.quotaPages == .max ? nil : s.quotaPages
        connections = s.connections
        requests = s.requests
        ioctls = s.ioctls
        idleSeconds = Double(s.idleMicros) / 1e6
        if let place = placement.place(of: s.enclave) {
            namespace = place.namespace
            pod = place.pod.isEmpty ? place.podUID : place.pod
            container = place.container
        }
    }

    // Explicit so that an unlimited quota is written as null rather than left out.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(label, forKey: .label)
        try c.encode(uid, forKey: .uid)
        try c.encode(gid, forKey: .gid)
        try c.encode(pid, forKey: .pid)
        try c.encode(device, forKey: .device)
        try c.encode(base, forKey: .base)
        try c.encode(sizeBytes, forKey: .sizeBytes)
        try c.encode(committedPages, forKey: .committedPages)
        try c.encode(lazyPoolPages, forKey: .lazyPoolPages)
        try c.encode(trimmingPages, forKey: .trimmingPages)
        try c.encode(removingPages, forKey: .removingPages)
        try c.encode(tcsPages, forKey: .tcsPages)
        try c.encode(quotaPages, forKey: .quotaPages)
        try c.encode(connections, forKey: .connections)
        try c.encode(requests, forKey: .requests)
        try c.encode(ioctls, forKey: .ioctls)
        try c.encode(idleSeconds, forKey: .idleSeconds)
        try c.encode(namespace, forKey: .namespace)
        try c.encode(pod, forKey: .pod)
        try c.encode(container, forKey: .container)
    }

    private enum CodingKeys: String, CodingKey {
        case id, label, uid, gid, pid, device, base, sizeBytes, committedPages, lazyPoolPages, trimmingPages, removingPages
        case tcsPages, quotaPages, connections, requests, ioctls, idleSeconds, namespace, pod, container
    }
}

/// Pages as a size: "4.0 MiB".
func pageBytes(_ pages: UInt64) -> String { bytes(Page.bytes(pages)) }
