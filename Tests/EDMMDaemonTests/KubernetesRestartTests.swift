import EDMMCore
import EDMMDaemon
import EDMMProtocol
import SGXSimulator
import Testing

/// The NRI hook registers a scope only when its container is created: a restart with the FD
/// store keeps the scopes, and each enclave keeps its pod.
@Suite struct KubernetesRestartTests {
    @Test func aRestartKeepsTheScopesAndEachEnclavesPod() async throws {
        let site = try RestartTests.Site()
        defer { site.remove() }
        let first = try site.startDaemon(scopes: ScriptedScopes(nil, TestPods.shopApp))
        let host = try site.connect()
        _ = try host.expect(.setScope(SetScopeRequest(podUID: TestPods.shopUID, namespace: "shop", pod: "web-0", quotaPages: 16)))
        let app = try site.connect()
        let machine = try SimulatedMachine.open(fd: try #require(app.receivedDescriptors.last))
        let enclave = try TestEnclave(machine: machine)
        let (handle, _) = try app.register(enclave, label: "kept")
        _ = try app.allocate(AllocateRequest(enclave: handle, length: 12 * 4096))
        await first.shutdown(restarting: true)

        let second = try site.startDaemon(
            passing: site.store.copies(), scopes: ScriptedScopes(nil, TestPods.batchJob, TestPods.shopSidecar))
        let admin = try site.connect()
        guard case .scopes(let list) = try admin.expect(.scopes(ScopeListRequest())) else { return }
        let pod = list.scopes.first { $0.containerID.isEmpty }
        #expect(pod?.registered == true && pod?.pod == "web-0" && pod?.quotaPages == 16 && pod?.usedPages == 12)
        // Another pod may not attach it; another container of its pod may, under the pod's quota.
        let stranger = try site.connect()
        #expect(try stranger.expectError(.attach(handle)).code == .notOwner)
        let sidecar = try site.connect()
        guard case .attach = try sidecar.expect(.attach(handle)) else { return }
        _ = try sidecar.allocate(AllocateRequest(enclave: handle, length: 4 * 4096))
        let full = try sidecar.expectError(.allocate(AllocateRequest(enclave: handle, length: 4096)))
        #expect(full.detail == .quota(scope: .pod, askedPages: 1, usedPages: 16, limitPages: 16))
        await second.shutdown()
    }
}
