import ArgumentParser
import EDMMClient
import EDMMCore
import EDMMKubernetes
import EDMMProtocol
import EDMMSystem
import FoundationEssentials
import Glibc

/// `edmmctl nri-hook`: a containerd NRI v0.1 plugin that registers each pod and container with
/// edmmd, with the EPC quota its annotations give, and drops it when the container goes.
struct NRIHookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nri-hook",
        abstract: "Set and drop Kubernetes scope quotas from containerd's NRI v0.1 (run by the runtime).",
        discussion: """
            containerd 1.5 and 1.6 run NRI v0.1 plugins named in /etc/nri/conf.json from \
            /opt/nri/bin as `NAME invoke`, with one JSON request on standard input, when they \
            create a pod sandbox or a container (before it starts) and when they delete it. \
            Install /opt/nri/bin/edmm-epc as a two-line script (#!/bin/sh, then \
            exec edmmctl nri-hook "$@") and name it in conf.json:
              {"version": "0.1", "plugins": [{"type": "edmm-epc", "conf": {"socket": "/run/edmmd/control.sock"}}]}
            On create edmmd learns the pod (its UID, namespace and name) and the container (its \
            ID and name) with the EPC quota of the annotations, first found: \
            epc-limit.nri.io/container.<name>, epc-limit.nri.io/pod, epc-limit.nri.io (bytes), \
            then the pod's sgx.intel.com/epc (a Kubernetes quantity such as 64Mi, written by \
            Intel's SGX admission webhook), which is a pod quota shared by its containers. \
            containerd passes pod annotations to the runtime only when the runtime's \
            pod_annotations lists them (["sgx.intel.com/*", "epc-limit.nri.io/*"]). On delete \
            the scope is dropped. Needs root (SET_SCOPE and DROP_SCOPE are admin verbs) and \
            edmmd with [kubernetes] enabled = true. See docs/kubernetes.md.

            Prints the NRI result {"version": "0.1", "plugin": ..., "metadata": {...}} on \
            standard output; on failure it carries "error", and the exit status is 1 (the \
            runtime then fails the container's creation: no container runs unaccounted).
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("What the runtime asks (`invoke`); ignored.", valueName: "action"))
    var action: String?

    @Option(help: ArgumentHelp("The plugin name reported in the result.", valueName: "name"))
    var plugin = "edmm-epc"

    func run() async throws {
        var result = NRIv01.Result(plugin: plugin)
        do {
            let request = try JSONDecoder().decode(NRIv01.Request.self, from: Data(try Self.readStandardInput()))
            result.metadata = try await apply(NRIHookPlan.plan(for: request), socket: request.conf?.socket ?? global.socketPath)
        } catch {
            result.error = "\(error)"
        }
        print(jsonText(result))
        if result.error != nil { throw ExitCode(1) }
    }

    /// Sends the plan to edmmd; what it did, for the result's metadata.
    private func apply(_ plan: NRIHookPlan, socket: String) async throws -> [String: String] {
        guard plan != .none else { return ["action": "none"] }
        let connection = try await EDMMConnection.connect(socketPath: socket, clientName: "edmmctl nri-hook")
        defer { connection.close() }
        switch plan {
        case .none:
            return [:]
        case .register(let registrations):
            var metadata: [String: String] = ["action": "set"]
            for registration in registrations {
                let reply = try await connection.setScope(Self.request(registration))
                let key = registration.scope.containerID == nil ? "pod" : "container"
                metadata["\(key)_quota_bytes"] = registration.quotaBytes.map { "\($0)" } ?? "none"
                if let source = registration.source { metadata["\(key)_quota_from"] = source }
                metadata["\(key)_enclaves"] = "\(reply.enclaves)"
            }
            return metadata
        case .drop(let scope):
            let reply = try await connection.dropScope(DropScopeRequest(podUID: scope.podUID, containerID: scope.containerID ?? ""))
            return ["action": "drop", "scopes": "\(reply.scopes)", "enclaves": "\(reply.enclaves)"]
        }
    }

    static func request(_ registration: ScopeRegistration) -> SetScopeRequest {
        SetScopeRequest(
            podUID: registration.scope.podUID, containerID: registration.scope.containerID ?? "", namespace: registration.namespace,
            pod: registration.pod, container: registration.container,
            // A quota is never rounded up: a byte count that is not whole pages allows the pages below it.
            quotaPages: registration.quotaBytes.map { $0 / Page.size } ?? .max)
    }

    /// The request: at most 4 MiB (an OCI spec's annotations are bounded far below that).
    static func readStandardInput() throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ValidationError("cannot read standard input: \(ErrnoName.of(errno))") }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
            guard bytes.count <= 4 << 20 else { throw ValidationError("the request on standard input is larger than 4 MiB") }
        }
    }
}
