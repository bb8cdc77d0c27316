import EDMMProtocol

/// Which Kubernetes namespace, pod and container each enclave belongs to, from SCOPES (empty
/// without `[kubernetes] enabled`: every enclave is then a host enclave).
struct ScopePlacement {
    struct Place: Equatable {
        var namespace: String
        var pod: String
        var container: String
        var podUID: String
    }

    private var places: [EnclaveHandle: Place] = [:]

    init(_ scopes: [ScopeSummary]) {
        // A pod's row lists all its containers' enclaves; their own rows, read after, name the container.
        for scope in scopes.sorted(by: { $0.containerID.isEmpty && !$1.containerID.isEmpty }) {
            let place = Place(namespace: scope.namespace, pod: scope.pod, container: scope.container, podUID: scope.podUID)
            for handle in scope.enclaves { places[handle] = place }
        }
    }

    func place(of handle: EnclaveHandle) -> Place? { places[handle] }

    /// "namespace/pod/container" (the pod's UID when edmmd has no names for it), or "-" on the host.
    func text(of handle: EnclaveHandle) -> String {
        guard let place = places[handle] else { return "-" }
        let pod = place.pod.isEmpty ? "pod \(place.podUID)" : "\(place.namespace)/\(place.pod)"
        return place.container.isEmpty ? pod : "\(pod)/\(place.container)"
    }
}
