import EDMMConfig
import EDMMCore
import EDMMDaemon
import EDMMKubernetes
import EDMMProtocol
import Synchronization
import Testing

/// `[kubernetes] enabled`: peers are told apart by pod, not uid (every test client here runs as
/// root, as nearly everything in a pod does), admin verbs stay root-on-the-host only, and
/// scope quotas bind containers. Scopes are injected (`ScriptedScopes`), no cgroups involved.
@Suite struct KubernetesScopeTests {
    static func kubernetes(_ config: inout DaemonConfig) { config.kubernetes.enabled = true }

    @Test func aPodSeesAndTouchesOnlyItsOwnPodsEnclaves() async throws {
        let scopes = ScriptedScopes(TestPods.shopApp, TestPods.batchJob, TestPods.shopSidecar)
        try await withDaemon(Self.kubernetes, options: { $0.peerScopes = scopes }) { daemon in
            let shop = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: shop))
            let (handle, _) = try shop.register(enclave)
            let batch = try daemon.connect()
            #expect(try batch.expectError(.attach(handle)).code == .notOwner)
            #expect(try batch.expectError(.stats(handle)).code == .notOwner)
            #expect(try batch.expectError(.unregister(handle)).code == .notOwner)
            guard case .enclaves(let hidden) = try batch.expect(.enclaves(EnclaveListRequest())) else { return }
            #expect(hidden.total == 0)
            #expect(try batch.status().enclaves == 0)
            guard case .scopes(let batchScopes) = try batch.expect(.scopes(ScopeListRequest())) else { return }
            #expect(batchScopes.scopes.allSatisfy { $0.podUID == TestPods.batchUID })

            // Another container of the same pod, also root: sees it and may attach it.
            let sidecar = try daemon.connect()
            guard case .enclaves(let shared) = try sidecar.expect(.enclaves(EnclaveListRequest())) else { return }
            #expect(shared.enclaves.map(\.enclave) == [handle])
            #expect(try sidecar.status().enclaves == 1)
            guard case .attach = try sidecar.expect(.attach(handle)) else { return }

            // Root on the host (no scope) sees everything, as an admin.
            let host = try daemon.connect()
            guard case .enclaves(let all) = try host.expect(.enclaves(EnclaveListRequest())) else { return }
            #expect(all.enclaves.map(\.enclave) == [handle])
            #expect(scopes.questions == 4)
        }
    }

    @Test func rootInAPodIsNoAdmin() async throws {
        try await withDaemon(Self.kubernetes, options: { $0.peerScopes = ScriptedScopes(TestPods.shopApp) }) { daemon in
            let pod = try daemon.connect()
            #expect(try pod.expectError(.reclaim(ReclaimRequest())).code == .notAdmin)
            #expect(try pod.expectError(.reload).code == .notAdmin)
            #expect(try pod.expectError(.setScope(Self.pod(quota: 1 << 20))).code == .notAdmin)
            #expect(try pod.expectError(.dropScope(DropScopeRequest(podUID: TestPods.shopUID))).code == .notAdmin)
        }
    }

    @Test func metricsOverTheSocketAreRenderedForThePodsView() async throws {
        let scopes = ScriptedScopes(TestPods.shopApp)
        let viewers = ViewerLog()
        try await withDaemon(Self.kubernetes, metricsText: { viewers.note($0) }, options: { $0.peerScopes = scopes }) { daemon in
            let pod = try daemon.connect()
            _ = try pod.expect(.metrics(MetricsRequest()))
            let host = try daemon.connect()
            _ = try host.expect(.metrics(MetricsRequest()))
        }
        #expect(viewers.seen == ["pod \(TestPods.shopUID)", "everyone"])
        let viewer = MetricsViewer.peer(PeerCredentials(pid: 1, uid: 0, gid: 0, scope: TestPods.shopApp))
        #expect(viewer.sees(PeerCredentials(pid: 2, uid: 1000, gid: 0, scope: TestPods.shopSidecar)))
        #expect(!viewer.sees(PeerCredentials(pid: 3, uid: 0, gid: 0, scope: TestPods.batchJob)))
        #expect(!viewer.sees(PeerCredentials(pid: 4, uid: 0, gid: 0)))
    }

    @Test func aContainerWithoutAQuotaGetsNoEPCByDefault() async throws {
        try await withDaemon(Self.kubernetes, options: { $0.peerScopes = ScriptedScopes(TestPods.shopApp) }) { daemon in
            let pod = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: pod))
            let (handle, _) = try pod.register(enclave)
            let error = try pod.expectError(.allocate(AllocateRequest(enclave: handle, length: 4096)))
            #expect(error.code == .quotaExceeded)
            #expect(error.detail == .quota(scope: .container, askedPages: 1, usedPages: 0, limitPages: 0))
            // The host is not a container: its enclaves keep the uid rules.
            let host = try daemon.connect()
            let hostEnclave = try TestEnclave(machine: try daemon.machine(from: host))
            let (hostHandle, _) = try host.register(hostEnclave)
            #expect(try host.allocate(AllocateRequest(enclave: hostHandle, length: 4096 * 8)).fresh.count == 1)
        }
    }

    @Test func theDefaultContainerQuotaIsConfigurable() async throws {
        try await withDaemon(
            {
                $0.kubernetes.enabled = true
                $0.kubernetes.defaultContainerBytes = 4 * 4096
            }, options: { $0.peerScopes = ScriptedScopes(TestPods.shopApp) }
        ) { daemon in
            let pod = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: pod))
            let (handle, _) = try pod.register(enclave)
            _ = try pod.allocate(AllocateRequest(enclave: handle, length: 4 * 4096))
            let error = try pod.expectError(.allocate(AllocateRequest(enclave: handle, length: 4096)))
            #expect(error.detail == .quota(scope: .container, askedPages: 1, usedPages: 4, limitPages: 4))
        }
    }

    @Test func aPodQuotaIsSharedByItsContainersAndAContainersOwnWins() async throws {
        let scopes = ScriptedScopes(nil, TestPods.shopApp, TestPods.shopSidecar)
        try await withDaemon(Self.kubernetes, options: { $0.peerScopes = scopes }) { daemon in
            let host = try daemon.connect()
            guard case .setScope(let set) = try host.expect(.setScope(Self.pod(quota: 16))) else { return }
            #expect(set == SetScopeReply(enclaves: 0, usedPages: 0))
            let app = try daemon.connect()
            let appEnclave = try TestEnclave(machine: try daemon.machine(from: app))
            let (appHandle, _) = try app.register(appEnclave)
            _ = try app.allocate(AllocateRequest(enclave: appHandle, length: 10 * 4096))
            let sidecar = try daemon.connect()
            let sidecarEnclave = try TestEnclave(machine: try daemon.machine(from: sidecar))
            let (sidecarHandle, _) = try sidecar.register(sidecarEnclave)
            _ = try sidecar.allocate(AllocateRequest(enclave: sidecarHandle, length: 6 * 4096))
            let full = try sidecar.expectError(.allocate(AllocateRequest(enclave: sidecarHandle, length: 4096)))
            #expect(full.detail == .quota(scope: .pod, askedPages: 1, usedPages: 16, limitPages: 16))

            // The sidecar's own quota replaces the pod's for it.
            let own = SetScopeRequest(
                podUID: TestPods.shopUID, containerID: TestPods.shopSidecar.containerID!, namespace: "shop", pod: "web-0",
                container: "sidecar", quotaPages: 8)
            guard case .setScope(let sidecarSet) = try host.expect(.setScope(own)) else { return }
            #expect(sidecarSet == SetScopeReply(enclaves: 1, usedPages: 6))
            _ = try sidecar.allocate(AllocateRequest(enclave: sidecarHandle, length: 2 * 4096))
            let ownFull = try sidecar.expectError(.allocate(AllocateRequest(enclave: sidecarHandle, length: 4096)))
            #expect(ownFull.detail == .quota(scope: .container, askedPages: 1, usedPages: 8, limitPages: 8))

            guard case .scopes(let list) = try host.expect(.scopes(ScopeListRequest())) else { return }
            let pod = list.scopes.first { $0.podUID == TestPods.shopUID && $0.containerID.isEmpty }
            #expect(pod?.pod == "web-0" && pod?.usedPages == 18 && pod?.quotaPages == 16 && pod?.enclaves.count == 2)
            let side = list.scopes.first { $0.containerID == TestPods.shopSidecar.containerID }
            #expect(side?.container == "sidecar" && side?.effectiveQuotaPages == 8 && side?.registered == true)
            let appRow = list.scopes.first { $0.containerID == TestPods.shopApp.containerID }
            #expect(appRow?.registered == false && appRow?.pod == "web-0" && appRow?.effectiveQuotaPages == 16)

            // Dropping the pod drops its containers' scopes: they fall back to the default (none).
            guard case .dropScope(let dropped) = try host.expect(.dropScope(DropScopeRequest(podUID: TestPods.shopUID))) else { return }
            #expect(dropped == DropScopeReply(scopes: 2, enclaves: 2))
            let closed = try app.expectError(.allocate(AllocateRequest(enclave: appHandle, length: 4096)))
            #expect(closed.detail == .quota(scope: .container, askedPages: 1, usedPages: 10, limitPages: 0))
        }
    }

    @Test func scopeVerbsRejectMalformedKeys() async throws {
        try await withDaemon(Self.kubernetes) { daemon in
            let host = try daemon.connect()
            let badPod = SetScopeRequest(podUID: "web-0", namespace: "shop", pod: "web-0")
            #expect(try host.expectError(.setScope(badPod)).code == .invalidArgument)
            let badContainer = DropScopeRequest(podUID: TestPods.shopUID, containerID: "abc")
            #expect(try host.expectError(.dropScope(badContainer)).code == .invalidArgument)
        }
    }

    @Test func aPeerWhoseScopeCannotBeResolvedIsRefusedAtHello() async throws {
        let scopes = ScriptedScopes([.failure(PeerScopeResolver.Failure(message: "its hierarchies disagree"))])
        try await withDaemon(Self.kubernetes, options: { $0.peerScopes = scopes }) { daemon in
            let client = try TestClient(path: daemon.socketPath)
            let error = try client.expectError(.hello(HelloRequest(clientName: "lost")))
            #expect(error.code == .notOwner)
            #expect(error.message.contains("hierarchies disagree"))
        }
    }

    @Test func withoutKubernetesModeNoScopeIsResolved() async throws {
        let scopes = ScriptedScopes(TestPods.shopApp)
        try await withDaemon(options: { $0.peerScopes = scopes }) { daemon in
            let client = try daemon.connect()
            guard case .reclaim = try client.expect(.reclaim(ReclaimRequest())) else { return }
            #expect(scopes.questions == 0)
        }
    }

    static func pod(quota: UInt64) -> SetScopeRequest {
        SetScopeRequest(podUID: TestPods.shopUID, namespace: "shop", pod: "web-0", quotaPages: quota)
    }
}

/// Which viewers METRICS rendered for.
final class ViewerLog: Sendable {
    private let viewers = Mutex<[String]>([])
    func note(_ viewer: MetricsViewer) -> String {
        viewers.withLock { $0.append(viewer.kind) }
        return "# rendered\n"
    }
    var seen: [String] { viewers.withLock { $0 } }
}

extension MetricsViewer {
    var kind: String {
        switch self {
        case .everyone: "everyone"
        case .peer(let peer): peer.scope.map { "pod \($0.podUID)" } ?? "uid \(peer.uid)"
        }
    }
}
