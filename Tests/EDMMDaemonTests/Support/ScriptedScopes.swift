import EDMMDaemon
import EDMMKubernetes
import Synchronization

/// Peer scopes for tests, with no cgroups: each HELLO takes the next answer, in order (the tests
/// connect one client at a time); once they run out, peers are host processes.
final class ScriptedScopes: PeerScopeSource {
    private let answers: Mutex<[Result<ContainerScope?, PeerScopeResolver.Failure>]>
    private let asked = Atomic<Int>(0)

    init(_ answers: [Result<ContainerScope?, PeerScopeResolver.Failure>]) { self.answers = Mutex(answers) }

    convenience init(_ scopes: ContainerScope?...) { self.init(scopes.map { .success($0) }) }

    /// How many HELLOs asked.
    var questions: Int { asked.load(ordering: .relaxed) }

    func scope(socket fd: Int32, pid: Int32) -> Result<ContainerScope?, PeerScopeResolver.Failure> {
        asked.add(1, ordering: .relaxed)
        return answers.withLock { $0.isEmpty ? .success(nil) : $0.removeFirst() }
    }
}

/// Pods and containers of the tests.
enum TestPods {
    static let shopUID = "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f"
    static let batchUID = "0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70"
    static let shopApp = ContainerScope(podUID: shopUID, containerID: String(repeating: "a", count: 64))
    static let shopSidecar = ContainerScope(podUID: shopUID, containerID: String(repeating: "b", count: 64))
    static let batchJob = ContainerScope(podUID: batchUID, containerID: String(repeating: "c", count: 64))
}
