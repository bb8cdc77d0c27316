import EDMMCore
import EDMMProtocol

private let summary = EnclaveSummary(
    enclave: 3, label: "nginx", uid: 1000, gid: 1000, pid: 4242, device: .simulated, base: 1 << 32, size: 1 << 30,
    committedPages: 100, pooledPages: 20, trimmingPages: 3, removingPages: 2, tcsPages: 4, quotaPages: .max,
    connections: 2, requests: 999, ioctls: 70, idleMicros: 1234)

private func reply(_ id: UInt64, _ verb: Verb, _ body: ResponseBody) -> ResponseOperation {
    ResponseOperation(id: id, verb: verb, outcome: .success(body))
}

private func failure(_ id: UInt64, _ verb: Verb, _ error: WireError) -> ResponseOperation {
    ResponseOperation(id: id, verb: verb, outcome: .failure(error))
}

/// One reply per body shape, one error per detail kind, each push, and a packed batch of replies.
let responseSeeds: [Seed] = [
    Seed(
        "hello",
        responses: [
            reply(
                1, .hello,
                .hello(
                    HelloReply(
                        version: 1, mode: .simulated, daemonVersion: "0.1.0", daemonPID: 77, limits: .default,
                        carriesMachineDescriptor: true))
            )
        ]
    ),
    Seed(
        "register",
        responses: [
            reply(2, .register, .register(RegisterReply(enclave: 5, device: .kernel, quotaPages: 4096, preheat: [pages(16, 16)])))
        ]),
    Seed(
        "attach",
        responses: [
            reply(
                3, .attach,
                .attach(AttachReply(base: 1 << 32, size: 1 << 30, label: "redis-0", device: .simulated, managed: pages(0, 1 << 18))))
        ]),
    Seed(
        "allocate",
        responses: [
            reply(
                4, .allocate, .allocate(AllocateReply(granted: pages(0, 3), permissions: .rw, reused: [pages(0, 1)], fresh: [pages(1, 2)])))
        ]
    ),
    Seed("done", responses: [reply(5, .trim, .done(DoneReply(pages: 3, ioctls: 1, batchedRequests: 8)))]),
    Seed(
        "status",
        responses: [
            reply(
                6, .status,
                .status(
                    StatusReply(
                        daemonVersion: "0.1.0", mode: .kernel, modeReason: "/dev/sgx_enclave supports SGX2", daemonPID: 1,
                        uptimeMicros: 5_000_000, enclaves: 2, connections: 3, epcTotalBytes: 1 << 27, epcCommittedBytes: 1 << 20,
                        epcResidentBytes: 0, underPressure: true, batching: true, requestsTotal: 10, requestsPerSecond: 2.5,
                        ioctlsTotal: 4, counters: [WireCounter("reclaimed_pages", 1), WireCounter("ioctl_errors", 0)])))
        ]
    ),
    Seed(
        "enclaves",
        responses: [reply(7, .enclaves, .enclaves(EnclaveListReply(enclaves: [summary, summary], nextStartAfter: 3, total: 9)))]),
    Seed(
        "stats",
        responses: [
            reply(
                8, .stats,
                .stats(EnclaveStatsReply(summary: summary, managed: pages(0, 1 << 18), counters: [WireCounter("requests_trim_ok", 4)])))
        ]
    ),
    Seed("reclaim", responses: [reply(9, .reclaim, .reclaim(ReclaimReply(scheduledPages: 12, enclaves: 2)))]),
    Seed("reload", responses: [reply(10, .reload, .reload(ReloadReply(summary: "quota.enclave_pages=100")))]),
    Seed(
        "metrics",
        responses: [reply(11, .metrics, .metrics(MetricsReply(totalBytes: 40, offset: 0, text: "# TYPE edmmd_committed_pages gauge\n")))]),
    Seed("set-scope", responses: [reply(19, .setScope, .setScope(SetScopeReply(enclaves: 2, usedPages: 300)))]),
    Seed("drop-scope", responses: [reply(20, .dropScope, .dropScope(DropScopeReply(scopes: 3, enclaves: 1)))]),
    Seed(
        "scopes",
        responses: [
            reply(
                21, .scopes,
                .scopes(
                    ScopeListReply(
                        scopes: [
                            ScopeSummary(
                                podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f", containerID: "", namespace: "shop", pod: "web-0",
                                container: "", quotaPages: 16_384, effectiveQuotaPages: 16_384, usedPages: 12, enclaves: [3, 4],
                                registered: true)
                        ], total: 1)))
        ]),

    Seed("error-no-detail", responses: [failure(12, .attach, WireError(.notOwner, "enclave 7 belongs to uid 1001"))]),
    Seed(
        "error-quota",
        responses: [
            failure(
                13, .allocate,
                WireError(.quotaExceeded, "uid quota", detail: .quota(scope: .uid, askedPages: 10, usedPages: 95, limitPages: 100)))
        ]
    ),
    Seed(
        "error-kernel-with-result",
        responses: [
            failure(
                14, .restrict,
                WireError(.kernelError, "EFAULT", detail: .kernel(ioctl: .restrictPermissions, errno: 14, countBytes: 4096, result: 20)))
        ]
    ),
    Seed(
        "error-kernel-without-result",
        responses: [
            failure(
                15, .trimAccepted,
                WireError(.kernelError, "EPERM", detail: .kernel(ioctl: .removePages, errno: 1, countBytes: 0, result: nil)))
        ]
    ),
    Seed(
        "error-page-state",
        responses: [
            failure(16, .trimAccepted, WireError(.invalidPageState, "not trimmed", detail: .page(offset: 0x2000, state: "committed")))
        ]),
    Seed(
        "error-whole-message",
        responses: [
            ResponseOperation(
                id: 0, verbCode: 0, outcome: .failure(WireError(.messageTooLarge, "too big", detail: .limit(limit: 65_536, actual: 70_000)))
            )
        ]
    ),
    Seed(
        "batch",
        responses: [
            reply(20, .free, .done(DoneReply(pages: 1))),
            reply(21, .trim, .done(DoneReply(pages: 2, ioctls: 1, batchedRequests: 3))),
            failure(22, .makeTCS, WireError(.notAligned, "offset 0x10 is not page aligned")),
            reply(23, .sync, .done(DoneReply(pages: 0))),
        ]
    ),
]

let pushSeeds: [Seed] = [
    Seed(
        "reclaim-notice",
        pushes: [
            PushOperation(sequence: 1, .reclaim(ReclaimNotice(enclave: 4, reason: .epcPressure, ranges: [pages(1, 3), pages(9, 1)])))
        ]),
    Seed(
        "shutdown-notice",
        pushes: [PushOperation(sequence: 2, .shutdown(ShutdownNotice(restarting: true, message: "systemctl restart edmmd")))]),
]
