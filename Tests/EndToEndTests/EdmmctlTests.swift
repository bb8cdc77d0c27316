import EDMMClient
import FoundationEssentials
import Testing

extension EndToEnd {
    @Suite struct Edmmctl {
        struct StatusJSON: Decodable {
            struct EPC: Decodable {
                var totalBytes: UInt64
                var committedBytes: UInt64
            }
            var mode: String
            var enclaves: Int
            var epc: EPC
        }

        @Test func statusJSONReportsTheModeTheEnclavesAndTheEPC() async throws {
            let daemon = try DaemonProcess(epcSize: "64MiB")
            let host = try await daemon.host("ctl")
            defer { host.close() }
            try await host.allocate(pages: 16)
            let edmmctl = try Products.path("edmmctl")
            let log = daemon.directory.path + "/edmmctl.log"
            let (status, output) = try runToCompletion(edmmctl, ["--socket", daemon.socketPath, "status", "--json"], stderrPath: log)
            #expect(status == 0)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let json = try decoder.decode(StatusJSON.self, from: Data(output.utf8))
            #expect(json.mode == "simulated")
            #expect(json.enclaves == 1)
            #expect(json.epc.totalBytes == 64 << 20)
            #expect(json.epc.committedBytes == 16 * 4096)
            let (textStatus, text) = try runToCompletion(edmmctl, ["status", "--socket", daemon.socketPath], stderrPath: log)
            #expect(textStatus == 0)
            #expect(text.contains("simulated"))
            #expect(daemon.stop() == 0)
        }

        @Test func statusWithoutADaemonExits69AndSaysWhere() throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let path = directory.path + "/nobody.sock"
            let log = directory.path + "/edmmctl.log"
            let (status, _) = try runToCompletion(try Products.path("edmmctl"), ["--socket", path, "status"], stderrPath: log)
            #expect(status == 69)
            let message = try #require(readFile(log))
            #expect(message.contains(path))
        }

        /// `make install` generates the completions: the friendlier "unknown command" check must
        /// not take the option's value (`bash`) for a command.
        @Test func completionScriptsAreGeneratedForEveryShell() throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            for shell in ["bash", "zsh", "fish"] {
                let (status, output) = try runToCompletion(
                    try Products.path("edmmctl"), ["--generate-completion-script", shell], stderrPath: directory.path + "/err")
                #expect(status == 0, "\(shell): \(readFile(directory.path + "/err") ?? "")")
                #expect(output.contains("edmmctl"))
            }
        }
    }
}
