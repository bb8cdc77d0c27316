/// The EPC limit a pod's annotations give one of its containers, with the precedence edmmd
/// documents (docs/kubernetes.md, "Quotas from the pod"):
///
/// 1. `epc-limit.nri.io/container.<name>`: that container's limit;
/// 2. `epc-limit.nri.io/pod`: the limit of each container of the pod;
/// 3. `epc-limit.nri.io`: the same, by its short name;
/// 4. `sgx.intel.com/epc`: the pod's total, shared by all its containers (Intel's SGX admission
///    webhook writes the sum of the containers' `sgx.intel.com/epc` limits there).
///
/// The first three are the keys the `nri-sgx-epc` plugin of containers/nri-plugins reads, with
/// the same meaning (a limit per container), so one annotation means the same to both. Values
/// are Kubernetes quantities (a plain number of bytes is one).
public struct EPCLimit: Equatable, Sendable {
    public enum Level: Equatable, Sendable {
        /// The container's own quota.
        case container
        /// The pod's, shared by every container of the pod without one of its own.
        case pod
    }

    public var level: Level
    public var bytes: UInt64
    /// The annotation it came from.
    public var annotation: String

    public init(level: Level, bytes: UInt64, annotation: String) {
        self.level = level
        self.bytes = bytes
        self.annotation = annotation
    }

    public static let intelPodAnnotation = "sgx.intel.com/epc"
    public static let nriPrefix = "epc-limit.nri.io"

    /// The container-level limit for `container` (rules 1 to 3), if the annotations give one.
    public static func containerLimit(annotations: [String: String], container: String) throws(KubernetesQuantity.ParseError) -> EPCLimit? {
        for key in ["\(nriPrefix)/container.\(container)", "\(nriPrefix)/pod", nriPrefix] {
            if let value = annotations[key] {
                return EPCLimit(level: .container, bytes: try KubernetesQuantity.bytes(value), annotation: key)
            }
        }
        return nil
    }

    /// The pod-level limit (rule 4), if the annotations give one.
    public static func podLimit(annotations: [String: String]) throws(KubernetesQuantity.ParseError) -> EPCLimit? {
        guard let value = annotations[intelPodAnnotation] else { return nil }
        return EPCLimit(level: .pod, bytes: try KubernetesQuantity.bytes(value), annotation: intelPodAnnotation)
    }

    /// Whether the annotations ask for EPC at all (any key of the four rules, for any container).
    public static func mentionsEPC(_ annotations: [String: String]) -> Bool {
        annotations.keys.contains { $0 == intelPodAnnotation || $0 == nriPrefix || $0.hasPrefix(nriPrefix + "/") }
    }
}
