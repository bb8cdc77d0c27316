import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import FoundationEssentials
import Glibc
import Testing

/// The command lines of the three programs, as users meet them: usage errors, suggestions, JSON
/// on standard error, the socket from the environment.
extension EndToEnd.Observability {
    @Test func configCheckNamesEveryProblemWithFileAndLine() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/edmmd.toml"
        let file = fopen(path, "w")
        fputs("[batch]\nwindow_us = 0\n[pool]\nthreshold = 3\n", file)
        fclose(file)
        let edmmctl = try Products.path("edmmctl")
        let log = directory.path + "/errors.log"
        let (status, _) = try runToCompletion(edmmctl, ["config", "check", path], stderrPath: log)
        #expect(status == 1)
        let errors = readFile(log) ?? ""
        #expect(errors.contains("\(path):2:"))
        #expect(errors.contains("\(path):4:"))
        let (jsonStatus, json) = try runToCompletion(edmmctl, ["config", "check", path, "--json"], stderrPath: log)
        #expect(jsonStatus == 1)
        #expect(json.contains("\"valid\":false"))
        #expect(json.contains("\"line\":2"))
        let good = fopen(path, "w")
        fputs("[batch]\nwindow_us = 200\n", good)
        fclose(good)
        let (okStatus, ok) = try runToCompletion(edmmctl, ["config", "check", path], stderrPath: log)
        #expect(okStatus == 0)
        #expect(ok.contains("OK"))
    }

    @Test func usageErrorsExit64AndAMissingDaemonExit69WithWhatToDo() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let edmmctl = try Products.path("edmmctl")
        let log = directory.path + "/errors.log"
        #expect(try runToCompletion(edmmctl, ["show"], stderrPath: log).status == 64)
        #expect(try runToCompletion(edmmctl, ["top", "--interval", "0"], stderrPath: log).status == 64)
        let socket = directory.path + "/absent.sock"
        let (status, _) = try runToCompletion(edmmctl, ["--socket", socket, "enclaves"], stderrPath: directory.path + "/absent.log")
        #expect(status == 69)
        let message = readFile(directory.path + "/absent.log") ?? ""
        #expect(message.contains(socket))
        #expect(message.contains("edmmd --simulate"))
    }

    @Test func aMistypedCommandGetsASuggestionAndNoCommandTheManualBothExit64() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let edmmctl = try Products.path("edmmctl")
        let log = directory.path + "/usage.log"
        #expect(try runToCompletion(edmmctl, ["stauts"], stderrPath: log).status == 64)
        #expect(readFile(log)?.contains("did you mean 'status'?") == true)
        #expect(try runToCompletion(edmmctl, ["--socket", "/x", "enclave", "--json"], stderrPath: log).status == 64)
        #expect(readFile(log)?.contains("did you mean 'enclaves'?") == true)
        let bare = directory.path + "/bare.log"
        let (status, output) = try runToCompletion(edmmctl, [], stderrPath: bare)
        #expect(status == 64)
        #expect(output.isEmpty && readFile(bare)?.contains("SUBCOMMANDS") == true, "the manual, on standard error")
        #expect(try runToCompletion(edmmctl, ["--help"], stderrPath: bare).status == 0)
    }

    @Test func underJSONEveryErrorIsOneJSONObjectOnStandardError() async throws {
        struct Failure: Decodable {
            struct Detail: Decodable {
                var message: String
                var exitStatus: Int32
                var code: String?
                var hint: String?
            }
            var error: Detail
        }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let edmmctl = try Products.path("edmmctl")
        let cases: [(arguments: [String], status: Int32, contains: String)] = [
            (["--socket", directory.path + "/absent.sock", "status", "--json"], 69, "absent.sock"),
            (["enclaves", "--json", "--sort", "nonsense"], 64, "nonsense"),
            (["stauts", "--json"], 64, "did you mean 'status'?"),
            (["--json"], 64, "no command"),
        ]
        for (index, test) in cases.enumerated() {
            let log = directory.path + "/json-\(index).log"
            let (status, output) = try runToCompletion(edmmctl, test.arguments, stderrPath: log)
            #expect(status == test.status, "\(test.arguments)")
            #expect(output.isEmpty)
            let lines = (readFile(log) ?? "").split(separator: "\n")
            #expect(lines.count == 1, "one line: \(lines)")
            let failure = try Self.decode(Failure.self, String(lines.first ?? ""))
            #expect(failure.error.exitStatus == test.status && failure.error.message.contains(test.contains), "\(failure)")
        }
        let daemon = try DaemonProcess()
        let (status, _, errors) = try Self.edmmctl(daemon, ["show", "nobody", "--json"])
        #expect(status == 1)
        #expect(try Self.decode(Failure.self, errors).error.code == "unknown-enclave")
        #expect(daemon.stop() == 0)
    }

    @Test func edmmdsUsageErrorsExit64AsItsHelpSays() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let edmmd = try Products.path("edmmd")
        let log = directory.path + "/edmmd.log"
        #expect(try runToCompletion(edmmd, ["--bogus"], stderrPath: log).status == 64)
        #expect(try runToCompletion(edmmd, ["--epc-size"], stderrPath: log).status == 64)
        let help = try runToCompletion(edmmd, ["--help"], stderrPath: log)
        #expect(help.status == 0)
        #expect(help.output.contains("64 bad command line"))
        #expect(!help.output.contains("2  bad command line"))
    }

    @Test func metricsAndTopPrintJSONWhenAsked() async throws {
        struct Families: Decodable {
            struct Family: Decodable {
                struct Sample: Decodable {
                    var name: String
                    var labels: [String: String]
                    var value: Double
                }
                var name: String
                var type: String
                var help: String
                var samples: [Sample]
            }
            var families: [Family]
        }
        struct Frame: Decodable {
            struct Row: Decodable {
                var enclave: EnclavesJSON.Enclave
                var requestsPerSecond: Double?
            }
            var elapsedSeconds: Double
            var enclaves: [Row]
        }
        let daemon = try DaemonProcess(config: Self.steadyPool)
        let hosts = try await Self.fleet(daemon)
        let (status, output, errors) = try Self.edmmctl(daemon, ["metrics", "--json"])
        #expect(status == 0, "\(errors)")
        let families = try Self.decode(Families.self, output).families
        let committed = families.first { $0.name == "edmmd_enclave_committed_bytes" }
        #expect(committed?.type == "gauge" && committed?.samples.count == 4)
        #expect(committed?.samples.first { $0.labels["enclave"] == "web-2" }.map { $0.value > 0 } == true)
        let latency = families.first { $0.name == "edmmd_request_duration_seconds" }
        #expect(
            latency?.type == "histogram"
                && latency?.samples.contains { $0.name == "edmmd_request_duration_seconds_bucket" && $0.labels["le"] == "+Inf" } == true)

        let top = try Self.edmmctl(daemon, ["top", "--json", "--iterations", "2", "--interval", "0.2", "--sort", "label"])
        #expect(top.status == 0, "\(top.errors)")
        let frames = try top.output.split(separator: "\n").map { try Self.decode(Frame.self, String($0)) }
        #expect(frames.count == 2)
        #expect(frames.last?.enclaves.map(\.enclave.label) == ["batch", "idle", "web-1", "web-2"])
        #expect(frames.first?.enclaves.allSatisfy { $0.requestsPerSecond == nil } == true, "no rate from one sample")
        #expect(frames.last?.enclaves.allSatisfy { $0.requestsPerSecond != nil } == true)
        for host in hosts { host.close() }
        #expect(daemon.stop() == 0)
    }

    @Test func edmmSimFindsTheSocketInEDMMD_SOCKETAsEdmmctlDoes() async throws {
        let daemon = try DaemonProcess()
        let log = daemon.directory.path + "/sim.log"
        let (status, _) = try runToCompletion(
            "/usr/bin/env",
            ["EDMMD_SOCKET=\(daemon.socketPath)", try Products.path("edmm-sim"), "run", "--enclaves", "1", "--duration", "1"],
            stderrPath: log)
        #expect(status == 0, "\(readFile(log) ?? "")")
        #expect(daemon.stop() == 0)
    }
}
