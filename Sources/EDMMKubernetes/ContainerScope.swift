/// Where a process runs in Kubernetes: its pod and, inside it, its container. Both keys appear
/// in every cgroup layout the kubelet and the CRI runtimes make, in NRI's requests and in the
/// container runtime's annotations, so edmmd keys quotas and ownership on them (never on a
/// cgroup path, whose shape depends on the cgroup driver).
public struct ContainerScope: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The pod's UID in its canonical form: lower-case hex with the dashes of a UUID
    /// (`8-4-4-4-12`), or 32 hex digits for a static pod's UID (a hash of its manifest).
    public var podUID: String
    /// The container's ID (64 lower-case hex digits), or nil for the pod itself.
    public var containerID: String?

    public init(podUID: String, containerID: String? = nil) {
        self.podUID = podUID
        self.containerID = containerID
    }

    /// The same pod, without the container.
    public var pod: ContainerScope { ContainerScope(podUID: podUID) }

    public var description: String {
        containerID.map { "pod \(podUID) container \(ContainerScope.shortID($0))" } ?? "pod \(podUID)"
    }

    /// The first 12 digits of a container ID, as crictl and docker print it.
    public static func shortID(_ id: String) -> String { String(id.prefix(12)) }

    public static func < (a: ContainerScope, b: ContainerScope) -> Bool {
        (a.podUID, a.containerID ?? "") < (b.podUID, b.containerID ?? "")
    }

    /// The canonical pod UID of `text` (dashes, or underscores as the systemd driver writes
    /// them inside unit names), or nil when it is not one.
    public static func canonicalPodUID<S: StringProtocol>(_ text: S) -> String? {
        let lowered = text.lowercased().map { $0 == "_" ? "-" : $0 }
        let hex = lowered.filter { $0 != "-" }
        guard hex.count == 32, hex.allSatisfy(\.isHexDigit) else { return nil }
        let dashes = lowered.indices.filter { lowered[$0] == "-" }
        // A UUID has its dashes after the 8th, 12th, 16th and 20th digits; a static pod's hash has none.
        guard dashes.isEmpty || dashes == [8, 13, 18, 23] else { return nil }
        return String(lowered)
    }

    /// The canonical container ID of `text` (64 hex digits), or nil.
    public static func canonicalContainerID<S: StringProtocol>(_ text: S) -> String? {
        guard text.utf8.count == 64, text.allSatisfy(\.isHexDigit) else { return nil }
        return text.lowercased()
    }
}
