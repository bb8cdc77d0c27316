/// NRI v0.1, the runtime hook protocol of containerd 1.5 and 1.6 (Debian 12's containerd is
/// 1.6.20): the runtime reads `/etc/nri/conf.json` (`{"version": "0.1", "plugins": [{"type":
/// NAME, "conf": {...}}]}`), runs `NAME invoke` from `/opt/nri/bin` for every sandbox and
/// container it creates (after the task exists, before it starts) and deletes, writes one JSON
/// request on its standard input and reads one JSON result from its standard output. A v0.1
/// plugin observes; it cannot change the container. Written from the protocol's documentation
/// (containerd/nri, README of v0.1.0); only the fields edmmd reads are decoded.
public enum NRIv01 {
    public struct Request: Decodable, Sendable, Equatable {
        public var version: String?
        /// `create`, `delete`, `update`, `pause`, `resume`.
        public var state: String
        /// The container's ID (the sandbox's own for the sandbox).
        public var id: String
        public var sandboxID: String?
        public var pid: Int?
        /// The sandbox's labels, as the kubelet set them (`io.kubernetes.pod.name`, ...).
        public var labels: [String: String]?
        public var spec: Spec?
        /// The plugin's `conf` object from conf.json.
        public var conf: Conf?

        public init(
            state: String, id: String, sandboxID: String? = nil, pid: Int? = nil, labels: [String: String]? = nil,
            spec: Spec? = nil, conf: Conf? = nil
        ) {
            self.state = state
            self.id = id
            self.sandboxID = sandboxID
            self.pid = pid
            self.labels = labels
            self.spec = spec
            self.conf = conf
        }

        /// Whether the request is about the pod's sandbox rather than one of its containers.
        public var isSandbox: Bool {
            if let type = annotations[Annotation.containerdContainerType] ?? annotations[Annotation.crioContainerType] {
                return type == "sandbox"
            }
            return sandboxID == nil || sandboxID == id
        }

        public var annotations: [String: String] { spec?.annotations ?? [:] }
    }

    public struct Spec: Decodable, Sendable, Equatable {
        public var cgroupsPath: String?
        /// The OCI spec's annotations: the runtime's own and the pod annotations its
        /// configuration passes through (containerd: `pod_annotations`).
        public var annotations: [String: String]?

        public init(cgroupsPath: String? = nil, annotations: [String: String]? = nil) {
            self.cgroupsPath = cgroupsPath
            self.annotations = annotations
        }
    }

    /// What `edmmctl nri-hook` takes from its conf.json entry.
    public struct Conf: Decodable, Sendable, Equatable {
        /// edmmd's control socket.
        public var socket: String?

        public init(socket: String? = nil) { self.socket = socket }
    }

    /// The plugin's answer. A non-empty `error` makes the runtime fail the operation (at
    /// create: the container does not start, and the kubelet retries).
    public struct Result: Encodable, Sendable, Equatable {
        public var version = "0.1"
        public var plugin: String
        public var error: String?
        public var metadata: [String: String]

        public init(plugin: String, error: String? = nil, metadata: [String: String] = [:]) {
            self.plugin = plugin
            self.error = error
            self.metadata = metadata
        }
    }

    /// Annotation and label keys the runtimes and the kubelet set.
    public enum Annotation {
        public static let containerdContainerType = "io.kubernetes.cri.container-type"
        public static let containerdContainerName = "io.kubernetes.cri.container-name"
        public static let containerdSandboxName = "io.kubernetes.cri.sandbox-name"
        public static let containerdSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
        public static let containerdSandboxUID = "io.kubernetes.cri.sandbox-uid"
        public static let crioContainerType = "io.kubernetes.cri-o.ContainerType"
        // CRI-O's annotations, and the kubelet's labels on every sandbox.
        public static let containerName = "io.kubernetes.container.name"
        public static let podName = "io.kubernetes.pod.name"
        public static let podNamespace = "io.kubernetes.pod.namespace"
        public static let podUID = "io.kubernetes.pod.uid"
    }
}
