/// A scope as the NRI hook registers it with edmmd: the keys, the names people and metrics
/// use, and the quota of its own (nil: none; a container then falls back to its pod's quota,
/// then to edmmd's `[kubernetes] default_container_quota`).
public struct ScopeRegistration: Equatable, Sendable {
    public var scope: ContainerScope
    public var namespace: String
    public var pod: String
    /// Empty for the pod itself.
    public var container: String
    public var quotaBytes: UInt64?
    /// The annotation the quota came from, for the hook's report.
    public var source: String?

    public init(scope: ContainerScope, namespace: String, pod: String, container: String, quotaBytes: UInt64?, source: String? = nil) {
        self.scope = scope
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.quotaBytes = quotaBytes
        self.source = source
    }
}

/// What `edmmctl nri-hook` asks of edmmd for one NRI v0.1 request. Pure, so that every case of
/// the annotations' precedence and of the runtimes' key names is tested without a runtime.
public enum NRIHookPlan: Equatable, Sendable {
    /// Register these scopes (SET_SCOPE, in order).
    case register([ScopeRegistration])
    /// Drop this scope: a container, or a pod with all its containers (DROP_SCOPE).
    case drop(ContainerScope)
    /// Nothing to do (`update`, `pause`, `resume`).
    case none

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }

    public static func plan(for request: NRIv01.Request) throws(Failure) -> NRIHookPlan {
        guard request.state == "create" || request.state == "delete" else { return .none }
        let names = Names(request)
        guard let podUID = names.podUID else {
            let path = request.spec?.cgroupsPath ?? "none"
            throw Failure(
                message: "no pod UID in the request (cgroupsPath \(path), no sandbox-uid annotation or pod.uid label): "
                    + "is this a Kubernetes container?")
        }
        let podScope = ContainerScope(podUID: podUID)
        let annotations = request.annotations
        let podLimit: EPCLimit?
        do { podLimit = try EPCLimit.podLimit(annotations: annotations) } catch { throw Failure(message: "\(error)") }
        if request.isSandbox {
            guard request.state == "create" else { return .drop(podScope) }
            return .register([names.pod(podScope, limit: podLimit)])
        }
        guard let containerID = names.containerID else {
            throw Failure(message: "no container ID in the request (id \"\(request.id.prefix(80))\")")
        }
        let scope = ContainerScope(podUID: podUID, containerID: containerID)
        guard request.state == "create" else { return .drop(scope) }
        let containerLimit: EPCLimit?
        do { containerLimit = try EPCLimit.containerLimit(annotations: annotations, container: names.container) } catch {
            throw Failure(message: "\(error)")
        }
        var registrations: [ScopeRegistration] = []
        if let podLimit { registrations.append(names.pod(podScope, limit: podLimit)) }
        registrations.append(
            ScopeRegistration(
                scope: scope, namespace: names.namespace, pod: names.pod, container: names.container,
                quotaBytes: containerLimit?.bytes, source: containerLimit?.annotation))
        return .register(registrations)
    }

    /// The names and keys of a request: the runtime's annotations first (containerd's, then
    /// CRI-O's), then the kubelet's sandbox labels; the keys from the cgroups path first, which is
    /// what the kernel will show edmmd for the container's processes.
    private struct Names {
        var podUID: String?
        var containerID: String?
        var namespace: String
        var pod: String
        var container: String

        init(_ request: NRIv01.Request) {
            typealias Key = NRIv01.Annotation
            let annotations = request.annotations
            let labels = request.labels ?? [:]
            func first(_ keys: String...) -> String? {
                for key in keys { if let value = annotations[key] ?? labels[key], !value.isEmpty { return value } }
                return nil
            }
            var fromPath: ContainerScope?
            if let path = request.spec?.cgroupsPath, case .container(let scope) = CgroupScopeParser.identity(path: path) {
                fromPath = scope
            }
            podUID = fromPath?.podUID ?? first(Key.containerdSandboxUID, Key.podUID).flatMap(ContainerScope.canonicalPodUID)
            containerID = fromPath?.containerID ?? ContainerScope.canonicalContainerID(request.id)
            namespace = first(Key.containerdSandboxNamespace, Key.podNamespace) ?? ""
            pod = first(Key.containerdSandboxName, Key.podName) ?? ""
            container = first(Key.containerdContainerName, Key.containerName) ?? ""
        }

        func pod(_ scope: ContainerScope, limit: EPCLimit?) -> ScopeRegistration {
            ScopeRegistration(
                scope: scope, namespace: namespace, pod: pod, container: "", quotaBytes: limit?.bytes, source: limit?.annotation)
        }
    }
}
