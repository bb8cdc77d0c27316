import EDMMKubernetes
import Testing

/// What the NRI v0.1 hook asks of edmmd, from requests shaped as containerd 1.6 sends them.
struct NRIHookPlanTests {
    static let uid = CgroupScopeParserTests.uid
    static let sandboxID = String(repeating: "a", count: 64)
    static let containerID = CgroupScopeParserTests.id

    /// A request as containerd 1.6's CRI plugin makes it for a container of pod `web` in
    /// namespace `shop` (cgroupfs driver), with the pod annotations its configuration passes.
    static func request(
        _ state: String = "create", sandbox: Bool = false, container: String = "app", podAnnotations: [String: String] = [:]
    ) -> NRIv01.Request {
        var annotations = [
            "io.kubernetes.cri.container-type": sandbox ? "sandbox" : "container",
            "io.kubernetes.cri.sandbox-id": sandboxID,
            "io.kubernetes.cri.sandbox-name": "web",
            "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.sandbox-uid": uid,
        ]
        if !sandbox { annotations["io.kubernetes.cri.container-name"] = container }
        annotations.merge(podAnnotations) { $1 }
        let id = sandbox ? sandboxID : containerID
        return NRIv01.Request(
            state: state, id: id, sandboxID: sandboxID, pid: 4242, labels: ["io.kubernetes.pod.name": "web"],
            spec: NRIv01.Spec(cgroupsPath: "/kubepods/burstable/pod\(uid)/\(id)", annotations: annotations))
    }

    static let pod = ContainerScope(podUID: uid)
    static let app = ContainerScope(podUID: uid, containerID: containerID)

    static func podRegistration(_ bytes: UInt64?) -> ScopeRegistration {
        ScopeRegistration(
            scope: pod, namespace: "shop", pod: "web", container: "", quotaBytes: bytes, source: bytes == nil ? nil : "sgx.intel.com/epc")
    }

    static func appRegistration(_ bytes: UInt64?, _ source: String?) -> ScopeRegistration {
        ScopeRegistration(scope: app, namespace: "shop", pod: "web", container: "app", quotaBytes: bytes, source: source)
    }

    @Test func theIntelWebhooksPodTotalBecomesThePodsQuotaAndTheContainerIsRegisteredWithoutOne() throws {
        let plan = try NRIHookPlan.plan(for: Self.request(podAnnotations: ["sgx.intel.com/epc": "64Mi"]))
        #expect(plan == .register([Self.podRegistration(64 << 20), Self.appRegistration(nil, nil)]))
    }

    @Test(arguments: [
        (
            ["epc-limit.nri.io/container.app": "8388608", "epc-limit.nri.io/pod": "1Mi", "epc-limit.nri.io": "2Mi"], UInt64(8 << 20),
            "epc-limit.nri.io/container.app"
        ),
        (
            ["epc-limit.nri.io/container.other": "8Mi", "epc-limit.nri.io/pod": "1Mi", "epc-limit.nri.io": "2Mi"], UInt64(1 << 20),
            "epc-limit.nri.io/pod"
        ),
        (["epc-limit.nri.io/container.other": "8Mi", "epc-limit.nri.io": "2Mi"], UInt64(2 << 20), "epc-limit.nri.io"),
    ])
    func containerAnnotationsWinInTheirOrder(_ annotations: [String: String], _ bytes: UInt64, _ source: String) throws {
        var withPodTotal = annotations
        withPodTotal["sgx.intel.com/epc"] = "64Mi"
        let plan = try NRIHookPlan.plan(for: Self.request(podAnnotations: withPodTotal))
        // The container's own quota, and the pod's total still registered for its other containers.
        #expect(plan == .register([Self.podRegistration(64 << 20), Self.appRegistration(bytes, source)]))
    }

    @Test func aContainerWithoutAnyAnnotationIsRegisteredByNameOnly() throws {
        #expect(try NRIHookPlan.plan(for: Self.request()) == .register([Self.appRegistration(nil, nil)]))
    }

    @Test func theSandboxRegistersThePodAndItsDeleteDropsThePod() throws {
        #expect(
            try NRIHookPlan.plan(for: Self.request(sandbox: true, podAnnotations: ["sgx.intel.com/epc": "32Mi"]))
                == .register([Self.podRegistration(32 << 20)]))
        #expect(try NRIHookPlan.plan(for: Self.request("delete", sandbox: true)) == .drop(Self.pod))
    }

    @Test func aContainersDeleteDropsTheContainerOnly() throws {
        #expect(try NRIHookPlan.plan(for: Self.request("delete", podAnnotations: ["sgx.intel.com/epc": "64Mi"])) == .drop(Self.app))
    }

    @Test(arguments: ["update", "pause", "resume"])
    func otherStatesAskNothing(_ state: String) throws {
        #expect(try NRIHookPlan.plan(for: Self.request(state)) == NRIHookPlan.none)
    }

    @Test func aBadQuantityFailsTheCreateWithTheAnnotationsValue() {
        #expect(
            throws: NRIHookPlan.Failure(
                message: "\"64MiB\" is not a Kubernetes quantity of bytes: unknown suffix \"MiB\" "
                    + "(Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>)"
            )
        ) { try NRIHookPlan.plan(for: Self.request(podAnnotations: ["sgx.intel.com/epc": "64MiB"])) }
    }

    @Test func theSystemdDriversCgroupsPathAndCRIOsKeysWorkToo() throws {
        let underscored = Self.uid.replacingDashes()
        let request = NRIv01.Request(
            state: "create", id: Self.containerID, sandboxID: Self.sandboxID,
            spec: NRIv01.Spec(
                cgroupsPath: "kubepods-burstable-pod\(underscored).slice:crio:\(Self.containerID)",
                annotations: [
                    "io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.container.name": "app",
                    "io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "shop", "epc-limit.nri.io": "4Mi",
                ]))
        #expect(try NRIHookPlan.plan(for: request) == .register([Self.appRegistration(4 << 20, "epc-limit.nri.io")]))
    }

    @Test func withoutACgroupsPathThePodUIDComesFromTheAnnotationsAndTheIDFromTheRequest() throws {
        var request = Self.request()
        request.spec?.cgroupsPath = nil
        #expect(try NRIHookPlan.plan(for: request) == .register([Self.appRegistration(nil, nil)]))
    }

    @Test func aRequestWithNoPodUIDAnywhereIsRefused() {
        let request = NRIv01.Request(state: "create", id: Self.containerID, spec: NRIv01.Spec(cgroupsPath: "/system.slice/x.scope"))
        #expect(throws: NRIHookPlan.Failure.self) { try NRIHookPlan.plan(for: request) }
    }

    @Test func mentionsEPCSeesEveryKeyOfThePrecedence() {
        #expect(EPCLimit.mentionsEPC(["sgx.intel.com/epc": "1"]))
        #expect(EPCLimit.mentionsEPC(["epc-limit.nri.io": "1"]))
        #expect(EPCLimit.mentionsEPC(["epc-limit.nri.io/container.x": "1"]))
        #expect(!EPCLimit.mentionsEPC(["sgx.intel.com/quote-provider": "aesmd"]))
    }
}

extension String {
    fileprivate func replacingDashes() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}
