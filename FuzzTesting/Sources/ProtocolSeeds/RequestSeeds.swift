import EDMMCore
import EDMMProtocol

private func request(_ id: UInt64, flags: RequestFlags = [], _ request: Request) -> RequestOperation {
    RequestOperation(id: id, flags: flags, request)
}

/// One message per request verb, then the edge cases: longest strings, several list elements,
/// fire-and-forget flags, a pipelined batch, and the most operations a message may hold.
let requestSeeds: [Seed] = [
    Seed("hello", requests: [request(1, .hello(HelloRequest(clientName: "gramine-pal 1.8")))]),
    Seed(
        "register",
        requests: [
            request(
                2,
                .register(
                    RegisterRequest(
                        descriptorIndex: 0, base: 0x7f00_0000_0000, size: 1 << 36, label: "redis-0", preheatPages: 16,
                        managed: pages(16, 1 << 20), adopted: [pages(16, 4)])))
        ]
    ),
    Seed("attach", requests: [request(3, .attach(7))]),
    Seed("unregister", requests: [request(4, .unregister(7))]),
    Seed(
        "allocate",
        requests: [
            request(5, .allocate(AllocateRequest(enclave: 7, offset: 32 * page, length: 8 * page, permissions: .rx, allowGrowth: true)))
        ]),
    Seed("free", requests: [request(6, .free(RangeRequest(enclave: 7, range: pages(32, 2))))]),
    Seed("trim", requests: [request(7, .trim(RangeRequest(enclave: 7, range: pages(34, 1))))]),
    Seed("trim-accepted", requests: [request(8, .trimAccepted(RangeRequest(enclave: 7, range: pages(34, 1))))]),
    Seed("restrict", requests: [request(9, .restrict(PermissionsRequest(enclave: 7, range: pages(40, 3), permissions: .read)))]),
    Seed("relax", requests: [request(10, .relax(PermissionsRequest(enclave: 7, range: pages(40, 3), permissions: .rwx)))]),
    Seed("make-tcs", requests: [request(11, .makeTCS(RangeRequest(enclave: 7, range: pages(50, 1))))]),
    Seed("sync", requests: [request(12, .sync(7))]),
    Seed("status", requests: [request(13, .status)]),
    Seed("enclaves", requests: [request(14, .enclaves(EnclaveListRequest(startAfter: 3, maxCount: 100)))]),
    Seed("stats", requests: [request(15, .stats(7))]),
    Seed("reclaim", requests: [request(16, .reclaim(ReclaimRequest(enclave: 0, targetPages: 256)))]),
    Seed("reload", requests: [request(17, .reload)]),
    Seed("metrics", requests: [request(18, .metrics(MetricsRequest(offset: 60_000)))]),
    Seed(
        "set-scope",
        requests: [
            request(
                19,
                .setScope(
                    SetScopeRequest(
                        podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f", containerID: String(repeating: "c", count: 64), namespace: "shop",
                        pod: "web-0", container: "app", quotaPages: 16_384)))
        ]),
    Seed("drop-scope", requests: [request(20, .dropScope(DropScopeRequest(podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f")))]),
    Seed("scopes", requests: [request(21, .scopes(ScopeListRequest(offset: 2, maxCount: 50)))]),

    Seed(
        "hello-longest-name",
        requests: [request(1, .hello(HelloRequest(minVersion: 1, maxVersion: 9, clientName: String(repeating: "n", count: 256))))]),
    Seed(
        "register-longest-label-three-adopted",
        requests: [
            request(
                2,
                .register(
                    RegisterRequest(
                        descriptorIndex: 7, base: 1 << 32, size: 1 << 30, label: String(repeating: "L", count: 64),
                        adopted: [pages(0, 1), pages(8, 8), pages(100, 2)])))
        ]
    ),
    Seed("hello-with-machine", requests: [request(1, flags: .machine, .hello(HelloRequest(clientName: "edmm-sim reconnect")))]),
    Seed("allocate-anywhere", requests: [request(5, .allocate(AllocateRequest(enclave: 1, length: 16 * page)))]),
    Seed("free-no-reply", requests: [request(6, flags: .noReply, .free(RangeRequest(enclave: 1, range: pages(0, 16))))]),
    Seed(
        "pipelined-trim-flow",
        requests: [
            request(20, .allocate(AllocateRequest(enclave: 2, length: page))),
            request(21, flags: .noReply, .free(RangeRequest(enclave: 2, range: pages(4, 1)))),
            request(22, .trim(RangeRequest(enclave: 2, range: pages(5, 2)))),
            request(23, .trimAccepted(RangeRequest(enclave: 2, range: pages(5, 2)))),
            request(24, flags: .noReply, .relax(PermissionsRequest(enclave: 2, range: pages(9, 1), permissions: .rw))),
            request(25, .makeTCS(RangeRequest(enclave: 2, range: pages(10, 1)))),
            request(26, .sync(2)),
        ]
    ),
    Seed("most-operations", requests: (1...256).map { request(UInt64($0), .status) }),
]
