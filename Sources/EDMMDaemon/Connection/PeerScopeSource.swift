import EDMMKubernetes

/// Finds the pod and container a connection's peer runs in, at HELLO with `[kubernetes] enabled`:
/// nil for a host process, a failure when edmmd cannot tell (the connection is then refused
/// rather than taken for a host process). Tests inject their own instead of real cgroups.
public protocol PeerScopeSource: Sendable {
    func scope(socket fd: Int32, pid: Int32) -> Result<ContainerScope?, PeerScopeResolver.Failure>
}

/// The peer's cgroup, read through SO_PEERPIDFD where the kernel has it (`PeerScopeResolver`).
public struct CgroupPeerScopeSource: PeerScopeSource {
    public init() {}

    public func scope(socket fd: Int32, pid: Int32) -> Result<ContainerScope?, PeerScopeResolver.Failure> {
        PeerScopeResolver.resolve(socket: fd, pid: pid).flatMap { resolution in
            switch resolution.identity {
            case .host: .success(nil)
            case .container(let scope): .success(scope)
            case .unrecognised(let why): .failure(PeerScopeResolver.Failure(message: "its cgroup names no pod edmmd recognises: \(why)"))
            }
        }
    }
}
