/// Who a process is, as its cgroup says: a host process, a container of a pod, or something
/// under the kubelet's cgroups that cannot be told apart (which Kubernetes mode refuses rather
/// than guess).
public enum CgroupIdentity: Hashable, Sendable {
    case host
    case container(ContainerScope)
    case unrecognised(String)
}

/// Reads the pod UID and container ID out of cgroup paths, for the layouts the kubelet and the
/// CRI runtimes make (kubelet's `pkg/kubelet/cm` names the pod cgroups, the runtime the
/// container's own):
///
/// | driver | path of a container's process |
/// |---|---|
/// | cgroupfs | `/kubepods[/burstable\|/besteffort]/pod<uid>/<id>` (containerd, docker), `.../pod<uid>/crio-<id>` |
/// | systemd | `/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/<runtime>-<id>.scope` |
///
/// (`<runtime>`: `cri-containerd`, `crio` or `docker`)
///
/// on cgroup v2 (one `0::<path>` line) and v1 or hybrid (one line per hierarchy). The kubelet's
/// cgroup root may sit deeper (`/kubelet.slice/...`, a node in a container); a container that
/// made cgroups below its own (cgroup v2 delegation) is still that container. Pure: no I/O.
public enum CgroupScopeParser {
    /// The identity `/proc/<pid>/cgroup` gives. Every hierarchy that places the process in a
    /// pod must name the same pod and container; a path under the kubelet's cgroups that does
    /// not parse makes the whole answer unrecognised.
    public static func identity(procCgroup text: String) -> CgroupIdentity {
        var found: ContainerScope?
        var sawLine = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2].hasPrefix("/") else {
                return .unrecognised("malformed line \"\(line.prefix(120))\"")
            }
            sawLine = true
            switch identity(path: fields[2]) {
            case .host: continue
            case .unrecognised(let why): return .unrecognised(why)
            case .container(let scope):
                if let earlier = found, earlier != scope {
                    return .unrecognised("its hierarchies disagree: \(earlier) and \(scope)")
                }
                found = scope
            }
        }
        guard sawLine else { return .unrecognised("no cgroup line") }
        return found.map(CgroupIdentity.container) ?? .host
    }

    /// The identity one cgroup path gives: a kernel path (either driver), or an OCI
    /// `cgroupsPath` as a runtime hands it to NRI (`/kubepods/...` for cgroupfs,
    /// `<slice>:<prefix>:<id>` for systemd).
    public static func identity(path: String) -> CgroupIdentity {
        identity(path: Substring(path))
    }

    static func identity(path: Substring) -> CgroupIdentity {
        if !path.hasPrefix("/") {
            let parts = path.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].hasSuffix(".slice") else {
                return path.contains("kubepods") ? .unrecognised("unknown cgroupsPath \"\(path.prefix(200))\"") : .host
            }
            guard parts[0].hasPrefix("kubepods") else { return .host }
            // kubepods-burstable-pod<uid_>.slice:cri-containerd:<id>: the slice's own ancestry
            // (kubepods.slice/kubepods-burstable.slice) is implied by its name.
            return identity(components: [Substring("kubepods.slice"), parts[0], Substring("\(parts[1])-\(parts[2]).scope")])
        }
        return identity(components: path.split(separator: "/"))
    }

    private static func identity(components: [Substring]) -> CgroupIdentity {
        guard let kubepods = components.firstIndex(where: isKubepods) else { return .host }
        guard let podIndex = components[(kubepods + 1)...].firstIndex(where: { podUID(component: $0) != nil }),
            let uid = podUID(component: components[podIndex])
        else {
            // The kubelet's own QoS cgroups hold no process; anything else here is a layout we do not know.
            let rest = components[(kubepods + 1)...]
            if rest.allSatisfy(isQoSLevel) {
                return .unrecognised("in the kubelet's QoS cgroup \(rest.joined(separator: "/")), not a pod's")
            }
            return .unrecognised("no pod cgroup in \"/\(components.joined(separator: "/").prefix(200))\"")
        }
        guard podIndex + 1 < components.count else { return .container(ContainerScope(podUID: uid)) }
        let next = components[podIndex + 1]
        if isMonitor(next) { return .container(ContainerScope(podUID: uid)) }
        guard let id = containerID(component: next) else {
            return .unrecognised("\"\(next.prefix(120))\" in pod \(uid) is not a container's cgroup")
        }
        return .container(ContainerScope(podUID: uid, containerID: id))
    }

    /// `kubepods` (cgroupfs), `kubepods.slice` or `kubepods-<qos>.slice` (systemd).
    private static func isKubepods(_ component: Substring) -> Bool {
        component == "kubepods" || component == "kubepods.slice"
    }

    private static func isQoSLevel(_ component: Substring) -> Bool {
        ["burstable", "besteffort", "kubepods-burstable.slice", "kubepods-besteffort.slice"].contains(component)
    }

    /// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid_>.slice` (systemd).
    static func podUID(component: Substring) -> String? {
        if component.hasPrefix("pod") {
            return ContainerScope.canonicalPodUID(component.dropFirst(3))
        }
        guard component.hasPrefix("kubepods-"), component.hasSuffix(".slice") else { return nil }
        // The UID is what follows the last "-pod" (the QoS level before it has no "-pod").
        let name = component.dropLast(".slice".count)
        guard let dash = name.indices.last(where: { name[$0...].hasPrefix("-pod") }) else { return nil }
        return ContainerScope.canonicalPodUID(name[name.index(dash, offsetBy: 4)...])
    }

    /// `<id>`, `<runtime>-<id>` or `<runtime>-<id>.scope`: the 64 hex digits at the end.
    static func containerID(component: Substring) -> String? {
        var name = component
        if name.hasSuffix(".scope") { name = name.dropLast(6) }
        if name.utf8.count > 64 {
            guard name.dropLast(64).hasSuffix("-") else { return nil }
            name = name.suffix(64)
        }
        return ContainerScope.canonicalContainerID(name)
    }

    /// CRI-O's per-container monitor (`crio-conmon-<id>.scope`): in the pod, but no container's process.
    private static func isMonitor(_ component: Substring) -> Bool { component.hasPrefix("crio-conmon-") }
}
