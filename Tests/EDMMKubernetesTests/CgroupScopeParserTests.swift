import EDMMKubernetes
import Testing

/// Real shapes of /proc/<pid>/cgroup for pod processes: {cgroupfs, systemd} drivers ×
/// {containerd, CRI-O, docker} × {cgroup v1, hybrid, v2}, and the shapes around them.
struct CgroupScopeParserTests {
    static let uid = "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f"
    static let uidUnderscored = "8f2c1a4e_3b5d_4c6e_9f70_1a2b3c4d5e6f"
    static let id = "4c1e2d3f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
    static let scope = ContainerScope(podUID: uid, containerID: id)

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var expected: CgroupIdentity
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "cgroupfs, containerd, v2, burstable", text: "0::/kubepods/burstable/pod\(uid)/\(id)\n", expected: .container(scope)),
        Case(name: "cgroupfs, containerd, v2, besteffort", text: "0::/kubepods/besteffort/pod\(uid)/\(id)\n", expected: .container(scope)),
        Case(name: "cgroupfs, v2, guaranteed (no QoS level)", text: "0::/kubepods/pod\(uid)/\(id)\n", expected: .container(scope)),
        Case(name: "cgroupfs, CRI-O, v2", text: "0::/kubepods/burstable/pod\(uid)/crio-\(id)\n", expected: .container(scope)),
        Case(
            name: "cgroupfs, containerd, v1 (every controller)",
            text: """
                12:hugetlb:/kubepods/burstable/pod\(uid)/\(id)
                11:memory:/kubepods/burstable/pod\(uid)/\(id)
                4:cpu,cpuacct:/kubepods/burstable/pod\(uid)/\(id)
                1:name=systemd:/kubepods/burstable/pod\(uid)/\(id)
                """, expected: .container(scope)),
        Case(
            name: "cgroupfs, hybrid: v1 controllers in the pod, the unified hierarchy at its root",
            text: """
                9:name=systemd:/kubepods/burstable/pod\(uid)/\(id)
                4:memory:/kubepods/burstable/pod\(uid)/\(id)
                0::/
                """, expected: .container(scope)),
        Case(
            name: "systemd, containerd, v2",
            text: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscored).slice/cri-containerd-\(id).scope\n",
            expected: .container(scope)),
        Case(
            name: "systemd, containerd, v2, guaranteed",
            text: "0::/kubepods.slice/kubepods-pod\(uidUnderscored).slice/cri-containerd-\(id).scope\n", expected: .container(scope)),
        Case(
            name: "systemd, CRI-O, v2",
            text: "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uidUnderscored).slice/crio-\(id).scope\n",
            expected: .container(scope)),
        Case(
            name: "systemd, docker (cri-dockerd), v1",
            text: """
                10:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscored).slice/docker-\(id).scope
                1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscored).slice/docker-\(id).scope
                """, expected: .container(scope)),
        Case(
            name: "systemd, CRI-O's conmon: in the pod, not a container",
            text: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscored).slice/crio-conmon-\(id).scope\n",
            expected: .container(ContainerScope(podUID: uid))),
        Case(
            name: "a sub-cgroup the container made (v2 delegation) is still the container",
            text: "0::/kubepods/burstable/pod\(uid)/\(id)/workers/a\n", expected: .container(scope)),
        Case(
            name: "a kubelet whose cgroup root is deeper (a node in a container)",
            text: "0::/docker/0123abcd/kubepods/burstable/pod\(uid)/\(id)\n", expected: .container(scope)),
        Case(
            name: "a static pod: its UID is 32 hex digits",
            text: "0::/kubepods/burstable/pod0123456789abcdef0123456789abcdef/\(id)\n",
            expected: .container(ContainerScope(podUID: "0123456789abcdef0123456789abcdef", containerID: id))),
        Case(
            name: "upper-case digits are canonicalised", text: "0::/kubepods/pod\(uid.uppercased())/\(id.uppercased())\n",
            expected: .container(scope)),
        Case(name: "a host process, v2", text: "0::/user.slice/user-1000.slice/session-3.scope\n", expected: .host),
        Case(name: "a host process at the root, hybrid", text: "9:name=systemd:/\n4:memory:/\n0::/\n", expected: .host),
        Case(name: "a system service, v2", text: "0::/system.slice/edmmd.service\n", expected: .host),
        Case(name: "a docker container outside Kubernetes", text: "0::/system.slice/docker-\(id).scope\n", expected: .host),
        Case(
            name: "the kubelet's QoS cgroup holds no pod",
            text: "0::/kubepods/burstable\n", expected: .unrecognised("in the kubelet's QoS cgroup burstable, not a pod's")),
        Case(
            name: "a pod cgroup whose child is not a container",
            text: "0::/kubepods/burstable/pod\(uid)/not-a-container\n",
            expected: .unrecognised("\"not-a-container\" in pod \(uid) is not a container's cgroup")),
        Case(
            name: "a malformed pod UID",
            text: "0::/kubepods/burstable/pod1234/\(id)\n",
            expected: .unrecognised("no pod cgroup in \"/kubepods/burstable/pod1234/\(id)\"")),
        Case(
            name: "hierarchies that disagree",
            text: "4:memory:/kubepods/pod\(uid)/\(id)\n0::/kubepods/pod\(uid)/\(String(id.reversed()))\n",
            expected: .unrecognised(
                "its hierarchies disagree: \(scope) and \(ContainerScope(podUID: uid, containerID: String(id.reversed())))")),
        Case(name: "a line without a path", text: "0::\n", expected: .unrecognised("malformed line \"0::\"")),
        Case(name: "nothing", text: "", expected: .unrecognised("no cgroup line")),
    ]

    @Test(arguments: cases)
    func procCgroupGivesTheContainerOrHost(_ testCase: Case) {
        #expect(CgroupScopeParser.identity(procCgroup: testCase.text) == testCase.expected)
    }

    @Test func ociCgroupsPathsOfBothDriversGiveTheSameScopeAsTheKernelPath() {
        #expect(CgroupScopeParser.identity(path: "/kubepods/burstable/pod\(Self.uid)/\(Self.id)") == .container(Self.scope))
        #expect(
            CgroupScopeParser.identity(path: "kubepods-burstable-pod\(Self.uidUnderscored).slice:cri-containerd:\(Self.id)")
                == .container(Self.scope))
        #expect(CgroupScopeParser.identity(path: "kubepods-pod\(Self.uidUnderscored).slice:crio:\(Self.id)") == .container(Self.scope))
        #expect(CgroupScopeParser.identity(path: "system.slice:docker:\(Self.id)") == .host)
        #expect(CgroupScopeParser.identity(path: "kubepods:nonsense") == .unrecognised("unknown cgroupsPath \"kubepods:nonsense\""))
    }

    @Test func podUIDsAreUUIDsOrStaticPodHashes() {
        #expect(ContainerScope.canonicalPodUID(Self.uid) == Self.uid)
        #expect(ContainerScope.canonicalPodUID(Self.uidUnderscored) == Self.uid)
        #expect(ContainerScope.canonicalPodUID("0123456789ABCDEF0123456789abcdef") == "0123456789abcdef0123456789abcdef")
        #expect(ContainerScope.canonicalPodUID("8f2c1a4e3-b5d-4c6e-9f70-1a2b3c4d5e6f") == nil)  // dashes misplaced
        #expect(ContainerScope.canonicalPodUID("8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6") == nil)  // one digit short
        #expect(ContainerScope.canonicalPodUID("zf2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f") == nil)
        #expect(ContainerScope.canonicalContainerID(String(Self.id.dropLast())) == nil)
    }
}
