import EDMMClient
import EDMMProtocol
import FoundationEssentials
import Glibc
import Testing

extension EndToEnd {
    /// `edmmctl nri-hook` against a real edmmd in Kubernetes mode, fed the JSON containerd 1.6
    /// writes to an NRI v0.1 plugin: the pod's annotations become scope quotas, delete drops them.
    @Suite struct NRIHook {
        static let podUID = "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f"
        static let sandboxID = String(repeating: "a", count: 64)
        static let containerID = String(repeating: "c", count: 64)

        static func request(_ state: String, sandbox: Bool) -> String {
            let id = sandbox ? sandboxID : containerID
            var annotations = [
                "io.kubernetes.cri.container-type": sandbox ? "sandbox" : "container",
                "io.kubernetes.cri.sandbox-id": sandboxID, "io.kubernetes.cri.sandbox-name": "web-0",
                "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": podUID,
                "sgx.intel.com/epc": "64Mi",
            ]
            if !sandbox {
                annotations["io.kubernetes.cri.container-name"] = "app"
                annotations["epc-limit.nri.io/container.app"] = "8388608"
            }
            let quoted = annotations.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
            return """
                {"version": "0.1", "state": "\(state)", "id": "\(id)", "sandboxID": "\(sandboxID)", "pid": 4242,
                 "spec": {"cgroupsPath": "/kubepods/burstable/pod\(podUID)/\(id)", "annotations": {\(quoted)}}}
                """
        }

        struct Result: Decodable {
            var plugin: String
            var error: String?
            var metadata: [String: String]?
        }

        static func hook(_ daemon: DaemonProcess, _ json: String) throws -> (status: Int32, result: Result) {
            let input = daemon.directory.path + "/request.json"
            let file = fopen(input, "w")
            fputs(json, file)
            fclose(file)
            let script = "exec \"$0\" --socket \"$1\" nri-hook invoke < \"$2\""
            let (status, output) = try runToCompletion(
                "/bin/sh", ["-c", script, try Products.path("edmmctl"), daemon.socketPath, input],
                stderrPath: daemon.directory.path + "/nri-hook.log")
            return (status, try JSONDecoder().decode(Result.self, from: Data(output.utf8)))
        }

        @Test func createSetsThePodAndContainerQuotasAndDeleteDropsThem() async throws {
            let daemon = try DaemonProcess(config: "[kubernetes]\nenabled = true\n")
            let sandbox = try Self.hook(daemon, Self.request("create", sandbox: true))
            #expect(sandbox.status == 0 && sandbox.result.error == nil)
            #expect(sandbox.result.metadata?["pod_quota_bytes"] == "\(64 << 20)")
            let container = try Self.hook(daemon, Self.request("create", sandbox: false))
            #expect(container.status == 0)
            #expect(container.result.metadata?["container_quota_from"] == "epc-limit.nri.io/container.app")

            let connection = try await EDMMConnection.connect(socketPath: daemon.socketPath, clientName: "nri-hook test")
            let scopes = try await connection.allScopes()
            #expect(scopes.count == 2)
            #expect(scopes.first { $0.containerID.isEmpty }?.quotaPages == 16_384)
            let app = scopes.first { $0.containerID == Self.containerID }
            #expect(app?.container == "app" && app?.pod == "web-0" && app?.namespace == "shop" && app?.quotaPages == 2_048)

            #expect(try Self.hook(daemon, Self.request("delete", sandbox: false)).result.metadata?["scopes"] == "1")
            #expect(try Self.hook(daemon, Self.request("delete", sandbox: true)).result.metadata?["scopes"] == "1")
            #expect(try await connection.allScopes().isEmpty)
            connection.close()
            #expect(daemon.stop() == 0)
        }

        @Test func aMalformedRequestFailsWithAnNRIError() async throws {
            let daemon = try DaemonProcess(config: "[kubernetes]\nenabled = true\n")
            let (status, result) = try Self.hook(daemon, "{\"state\": \"create\"")
            #expect(status == 1)
            #expect(result.plugin == "edmm-epc" && result.error != nil)
            #expect(daemon.stop() == 0)
        }
    }
}
