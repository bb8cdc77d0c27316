import EDMMClient
import EDMMDaemon
import EDMMKubernetes
import EDMMProtocol
import Synchronization
import Testing

/// The per-container families of Kubernetes mode: labelled as kube-state-metrics labels the
/// pod's limits, filled from SET_SCOPE's names, and shown to a pod's own clients only.
@Suite struct ContainerSeriesTests {
    static let podUID = "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f"
    static let app = ContainerScope(podUID: podUID, containerID: String(repeating: "a", count: 64))

    /// The first HELLO is the host's (the admin), every later one the app container's.
    final class AppAfterFirst: PeerScopeSource {
        let hellos = Atomic<Int>(0)
        func scope(socket fd: Int32, pid: Int32) -> Result<ContainerScope?, PeerScopeResolver.Failure> {
            .success(hellos.add(1, ordering: .relaxed).oldValue == 0 ? nil : ContainerSeriesTests.app)
        }
    }

    @Test func aContainersEPCAndQuotaCarryItsNamespacePodAndContainer() async throws {
        let fixture = try MetricsFixture({ $0.kubernetes.enabled = true }, wire: { $0.peerScopes = AppAfterFirst() })
        let admin = try await fixture.connect()
        _ = try await admin.setScope(
            SetScopeRequest(
                podUID: Self.podUID, containerID: Self.app.containerID!, namespace: "shop", pod: "web-0", container: "app",
                quotaPages: 4096))
        let host = try await fixture.host("web")
        let labels = ["namespace": "shop", "pod": "web-0", "container": "app"]
        let everyone = Exposition(fixture.exporter.renderText(for: .everyone))
        #expect(everyone.value("edmmd_container_enclaves", labels) == 1)
        #expect(everyone.value("edmmd_container_quota_bytes", labels) == Double(16 << 20))
        let held = try #require(everyone.value("edmmd_container_epc_bytes", labels))
        #expect(held == everyone.value("edmmd_epc_committed_bytes"))

        let otherPod = PeerCredentials(pid: 1, uid: 0, gid: 0, scope: ContainerScope(podUID: "0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70"))
        let hidden = Exposition(fixture.exporter.renderText(for: .peer(otherPod)))
        #expect(hidden.values("edmmd_container_epc_bytes").isEmpty)
        #expect(!hidden.samples.contains { $0.labels["enclave"] != nil })
        let samePod = Exposition(fixture.exporter.renderText(for: .peer(PeerCredentials(pid: 1, uid: 0, gid: 0, scope: Self.app))))
        #expect(samePod.value("edmmd_container_epc_bytes", labels) == held)
        host.close()
        admin.close()
        await fixture.stop()
    }
}
