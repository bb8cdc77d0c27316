import EDMMCore
import EDMMProtocol

/// One example of every request verb, with non-default field values so that a field the codec
/// drops or swaps shows up as a difference.
let everyRequest: [Request] = [
    .hello(HelloRequest(minVersion: 1, maxVersion: 1, clientName: "gramine-pal 1.8")),
    .register(
        RegisterRequest(
            descriptorIndex: 1, base: 0x7f00_0000_0000, size: 1 << 40, label: "redis-0", preheatPages: 64,
            managed: WireRange(offset: 0x10000, length: 1 << 30),
            adopted: [WireRange(offset: 0x10000, length: 0x4000), WireRange(offset: 0x40000, length: 0x1000)])),
    .attach(7),
    .unregister(8),
    .allocate(AllocateRequest(enclave: 9, offset: 0x20000, length: 0x8000, permissions: .rx, allowGrowth: true)),
    .allocate(AllocateRequest(enclave: 9, length: 0x1000)),
    .free(RangeRequest(enclave: 10, range: WireRange(offset: 0x1000, length: 0x2000))),
    .trim(RangeRequest(enclave: 11, range: WireRange(offset: 0x3000, length: 0x1000))),
    .trimAccepted(RangeRequest(enclave: 12, range: WireRange(offset: 0x5000, length: 0x1000))),
    .restrict(PermissionsRequest(enclave: 13, range: WireRange(offset: 0x6000, length: 0x3000), permissions: .read)),
    .relax(PermissionsRequest(enclave: 14, range: WireRange(offset: 0x9000, length: 0x1000), permissions: .rwx)),
    .makeTCS(RangeRequest(enclave: 15, range: WireRange(offset: 0xA000, length: 0x1000))),
    .sync(16),
    .status,
    .enclaves(EnclaveListRequest(startAfter: 17, maxCount: 12)),
    .stats(18),
    .reclaim(ReclaimRequest(enclave: 19, targetPages: 100)),
    .reload,
    .metrics(MetricsRequest(offset: 4096)),
    // The Kubernetes admin verbs: Swift only (libedmm, and so the vector file, has no use for them).
    .setScope(
        SetScopeRequest(
            podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f", containerID: String(repeating: "c", count: 64), namespace: "shop",
            pod: "web-0", container: "app", quotaPages: 16384)),
    .dropScope(DropScopeRequest(podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f")),
    .scopes(ScopeListRequest(offset: 3, maxCount: 20)),
]

let exampleSummary = EnclaveSummary(
    enclave: 3, label: "nginx", uid: 1000, gid: 1000, pid: 4242, device: .simulated, base: 0x100000,
    size: 1 << 30, committedPages: 1, pooledPages: 2, trimmingPages: 3, removingPages: 4, tcsPages: 5,
    quotaPages: .max, connections: 2, requests: 99, ioctls: 7, idleMicros: 1234)

/// One example of every response body and every error detail kind.
let everyResponse: [ResponseOperation] = [
    ResponseOperation(
        id: 1, verb: .hello,
        outcome: .success(
            .hello(
                HelloReply(
                    version: 1, mode: .simulated, daemonVersion: "0.1.0", daemonPID: 77, limits: .default, carriesMachineDescriptor: true)))
    ),
    ResponseOperation(
        id: 2, verb: .register,
        outcome: .success(
            .register(RegisterReply(enclave: 5, device: .kernel, quotaPages: 4096, preheat: [WireRange(offset: 0, length: 0x10000)])))),
    ResponseOperation(
        id: 3, verb: .attach,
        outcome: .success(
            .attach(
                AttachReply(
                    base: 1 << 32, size: 1 << 20, label: "a", device: .simulated, managed: WireRange(offset: 0, length: 1 << 20))))),
    ResponseOperation(
        id: 4, verb: .allocate,
        outcome: .success(
            .allocate(
                AllocateReply(
                    granted: WireRange(offset: 0, length: 0x3000), permissions: .rw,
                    reused: [WireRange(offset: 0, length: 0x1000)], fresh: [WireRange(offset: 0x1000, length: 0x2000)])))),
    ResponseOperation(id: 5, verb: .trim, outcome: .success(.done(DoneReply(pages: 3, ioctls: 1, batchedRequests: 8)))),
    ResponseOperation(
        id: 6, verb: .status,
        outcome: .success(
            .status(
                StatusReply(
                    daemonVersion: "0.1.0", mode: .simulated, modeReason: "--simulate", daemonPID: 1, uptimeMicros: 5,
                    enclaves: 2, connections: 3, epcTotalBytes: 1 << 27, epcCommittedBytes: 1 << 20,
                    epcResidentBytes: 1 << 19, underPressure: true, batching: true, requestsTotal: 10,
                    requestsPerSecond: 2.5, ioctlsTotal: 4, counters: [WireCounter("reclaims", 1)])))),
    ResponseOperation(
        id: 7, verb: .enclaves,
        outcome: .success(.enclaves(EnclaveListReply(enclaves: [exampleSummary, exampleSummary], nextStartAfter: 3, total: 9)))),
    ResponseOperation(
        id: 8, verb: .stats,
        outcome: .success(
            .stats(
                EnclaveStatsReply(
                    summary: exampleSummary, managed: WireRange(offset: 0, length: 4096),
                    counters: [WireCounter("requests_trim_ok", 4)])))),
    ResponseOperation(id: 9, verb: .reclaim, outcome: .success(.reclaim(ReclaimReply(scheduledPages: 12, enclaves: 2)))),
    ResponseOperation(id: 10, verb: .reload, outcome: .success(.reload(ReloadReply(summary: "quota.enclave_pages=100")))),
    ResponseOperation(id: 11, verb: .metrics, outcome: .success(.metrics(MetricsReply(totalBytes: 10, offset: 0, text: "# TYPE x\n")))),
    ResponseOperation(
        id: 12, verb: .allocate,
        outcome: .failure(
            WireError(.quotaExceeded, "enclave quota", detail: .quota(scope: .uid, askedPages: 10, usedPages: 95, limitPages: 100)))),
    ResponseOperation(
        id: 13, verb: .trimAccepted,
        outcome: .failure(
            WireError(.kernelError, "EPERM", detail: .kernel(ioctl: .removePages, errno: 1, countBytes: 4096, result: nil)))),
    ResponseOperation(
        id: 14, verb: .restrict,
        outcome: .failure(
            WireError(.kernelError, "EFAULT", detail: .kernel(ioctl: .restrictPermissions, errno: 14, countBytes: 0, result: 20)))),
    ResponseOperation(
        id: 15, verb: .trimAccepted,
        outcome: .failure(WireError(.invalidPageState, "not trimmed", detail: .page(offset: 0x2000, state: "committed")))),
    ResponseOperation(
        id: 16, verb: .allocate,
        outcome: .failure(
            WireError(.quotaExceeded, "pod quota", detail: .quota(scope: .pod, askedPages: 1, usedPages: 16384, limitPages: 16384)))),
    ResponseOperation(
        id: 20, verb: .allocate,
        outcome: .failure(
            WireError(.quotaExceeded, "container quota", detail: .quota(scope: .container, askedPages: 1, usedPages: 0, limitPages: 0)))),
    ResponseOperation(
        id: 0, verbCode: 0, outcome: .failure(WireError(.messageTooLarge, "big", detail: .limit(limit: 65536, actual: 70000)))),
    // Swift only, as above.
    ResponseOperation(id: 17, verb: .setScope, outcome: .success(.setScope(SetScopeReply(enclaves: 2, usedPages: 300)))),
    ResponseOperation(id: 18, verb: .dropScope, outcome: .success(.dropScope(DropScopeReply(scopes: 3, enclaves: 1)))),
    ResponseOperation(
        id: 19, verb: .scopes,
        outcome: .success(
            .scopes(
                ScopeListReply(
                    scopes: [
                        ScopeSummary(
                            podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f", containerID: "", namespace: "shop", pod: "web-0",
                            container: "", quotaPages: 16384, effectiveQuotaPages: 16384, usedPages: 12, enclaves: [3, 4],
                            registered: true),
                        ScopeSummary(
                            podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f", containerID: String(repeating: "d", count: 64), namespace: "",
                            pod: "", container: "", quotaPages: .max, effectiveQuotaPages: 0, usedPages: 0, enclaves: [],
                            registered: false),
                    ], total: 7)))),
]

func requestMessage(_ requests: [Request]) -> [UInt8] {
    MessageCodec.encodeRequests(requests.enumerated().map { RequestOperation(id: UInt64($0.offset + 1), $0.element) })
}

/// Writes a little-endian integer into a message at a byte offset (to forge headers).
func poke<T: FixedWidthInteger>(_ bytes: inout [UInt8], at offset: Int, _ value: T) {
    withUnsafeBytes(of: value.littleEndian) { raw in
        for i in 0..<raw.count { bytes[offset + i] = raw[i] }
    }
}
