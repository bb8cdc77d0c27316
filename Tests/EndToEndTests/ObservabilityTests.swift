import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import FoundationEssentials
import Glibc
import Testing

extension EndToEnd {
    /// /metrics, the METRICS verb and edmmctl against a real edmmd with several enclaves.
    @Suite struct Observability {
        /// `edmmctl enclaves --json`, as documented in `edmmctl enclaves --help`.
        struct EnclavesJSON: Decodable {
            struct Enclave: Decodable {
                var id: UInt64
                var label: String
                var uid: UInt32
                var gid: UInt32
                var pid: UInt32
                var device: String
                var base: UInt64
                var sizeBytes: UInt64
                var committedPages: UInt64
                var lazyPoolPages: UInt64
                var trimmingPages: UInt64
                var removingPages: UInt64
                var tcsPages: UInt64
                var quotaPages: UInt64?
                var connections: UInt32
                var requests: UInt64
                var ioctls: UInt64
                var idleSeconds: Double
            }
            var enclaves: [Enclave]
        }

        struct ShowJSON: Decodable {
            struct Managed: Decodable {
                var offset: UInt64
                var length: UInt64
            }
            var enclave: EnclavesJSON.Enclave
            var managed: Managed
            var counters: [String: UInt64]
        }

        static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(type, from: Data(text.utf8))
        }

        /// Pools are never reclaimed on their own here, so what the tests read stays put.
        static let steadyPool = "[pool]\nthreshold_percent = 100\n"

        /// Four enclaves with pages in every state edmmd tracks, all requests answered.
        static func fleet(_ daemon: DaemonProcess) async throws -> [SimulatedEnclaveHost] {
            var hosts: [SimulatedEnclaveHost] = []
            for (index, label) in ["web-1", "web-2", "batch", "idle"].enumerated() {
                let host = try await daemon.host(label)
                hosts.append(host)
                guard index < 3 else { continue }
                let granted = try await host.allocate(pages: UInt64(40 * (index + 1)))
                _ = try await host.run(.free(PageRange(first: granted.first, count: 10)))
                _ = try await host.run(.trim(PageRange(first: granted.first + 10, count: 5)))
                _ = try await host.run(.restrict(PageRange(first: granted.first + 20, count: 4), to: .read))
                _ = try await host.run(.makeTCS(page: granted.first + 30))
                try await host.sync()
            }
            return hosts
        }

        static func edmmctl(_ daemon: DaemonProcess, _ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
            let log = daemon.directory.path + "/edmmctl-\(UInt32.random(in: 0...UInt32.max)).log"
            let (status, output) = try runToCompletion(
                try Products.path("edmmctl"), ["--socket", daemon.socketPath] + arguments, stderrPath: log)
            return (status, output, readFile(log) ?? "")
        }

        /// Runs a shell pipeline; its exit status and what it printed (both streams).
        static func shell(_ command: String, in directory: TemporaryDirectory) throws -> (status: Int32, output: String) {
            let log = directory.path + "/shell.log"
            let (status, output) = try runToCompletion("/bin/sh", ["-c", command + " 2>&1"], stderrPath: log)
            return (status, output)
        }

        @Test func aLiveScrapeWithSeveralEnclavesPassesPromtoolAndItsGaugesEqualTheLedger() async throws {
            let promtool = try requireTool("/usr/bin/promtool")
            let curl = try requireTool("/usr/bin/curl")
            let port = try freeLoopbackPort()
            let daemon = try DaemonProcess(config: Self.steadyPool, flags: ["--metrics", "127.0.0.1:\(port)"])
            let hosts = try await Self.fleet(daemon)
            let scrape = daemon.directory.path + "/scrape.txt"
            let fetched = try Self.shell(
                "\(curl) -sS -f -o \(scrape) -D \(scrape).headers http://127.0.0.1:\(port)/metrics", in: daemon.directory)
            #expect(fetched.status == 0, "\(fetched.output)")
            let checked = try Self.shell("\(promtool) check metrics < \(scrape)", in: daemon.directory)
            #expect(checked.status == 0, "promtool: \(checked.output)")
            #expect(readFile(scrape + ".headers")?.contains("text/plain; version=0.0.4") == true)

            let text = try #require(readFile(scrape))
            let connection = try await daemon.connect()
            for host in hosts {
                let stats = try await connection.stats(host.handle)
                let counters = Dictionary(stats.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
                let labels = "{enclave=\"\(host.blueprint.label)\",uid=\"\(getuid())\"}"
                #expect(text.contains("edmmd_enclave_committed_bytes\(labels) \(stats.summary.committedPages * 4096)\n"))
                #expect(text.contains("edmmd_enclave_lazy_pool_bytes\(labels) \((counters["pages_pooled"] ?? 0) * 4096)\n"))
                #expect(
                    text.contains(
                        "edmmd_enclave_info{enclave=\"\(host.blueprint.label)\",uid=\"\(getuid())\",enclave_id=\"\(host.handle)\","))
            }
            connection.close()
            await expectLedgersMatch(hosts)
            for host in hosts { host.close() }
            #expect(daemon.stop() == 0)
        }

        @Test func edmmctlMetricsServesTheExpositionOverTheControlSocket() async throws {
            let promtool = try requireTool("/usr/bin/promtool")
            let daemon = try DaemonProcess(config: Self.steadyPool)
            let hosts = try await Self.fleet(daemon)
            let (status, output, errors) = try Self.edmmctl(daemon, ["metrics"])
            #expect(status == 0, "\(errors)")
            let path = daemon.directory.path + "/metrics.txt"
            let file = fopen(path, "w")
            fputs(output + "\n", file)
            fclose(file)
            let checked = try Self.shell("\(promtool) check metrics < \(path)", in: daemon.directory)
            #expect(checked.status == 0, "promtool: \(checked.output)")
            #expect(output.contains("edmmd_enclave_committed_bytes{enclave=\"batch\""))
            for host in hosts { host.close() }
            #expect(daemon.stop() == 0)
        }

        @Test func enclavesJSONMatchesTheDaemonFieldByField() async throws {
            let daemon = try DaemonProcess(config: Self.steadyPool + "[quota]\nenclave = \"16MiB\"\n")
            let hosts = try await Self.fleet(daemon)
            let (status, output, errors) = try Self.edmmctl(daemon, ["enclaves", "--json"])
            #expect(status == 0, "\(errors)")
            let listed = try Self.decode(EnclavesJSON.self, output).enclaves
            let connection = try await daemon.connect()
            let expected = try await connection.allEnclaves()
            connection.close()
            #expect(listed.map(\.id) == expected.map(\.enclave))
            for (row, summary) in zip(listed, expected) {
                #expect(row.label == summary.label)
                #expect(row.uid == summary.uid && row.uid == getuid())
                #expect(row.gid == summary.gid)
                #expect(row.pid == summary.pid && row.pid == UInt32(getpid()))
                #expect(row.device == "simulated")
                #expect(row.base == summary.base)
                #expect(row.sizeBytes == summary.size)
                #expect(row.committedPages == summary.committedPages)
                #expect(row.lazyPoolPages == summary.pooledPages)
                #expect(row.trimmingPages == summary.trimmingPages)
                #expect(row.removingPages == summary.removingPages)
                #expect(row.tcsPages == summary.tcsPages)
                #expect(row.quotaPages == 4096)
                #expect(row.connections == summary.connections)
                #expect(row.requests == summary.requests)
                #expect(row.ioctls == summary.ioctls)
                #expect(row.idleSeconds >= 0)
            }
            let web2 = try #require(listed.first { $0.label == "web-2" })
            #expect(web2.committedPages == 80 - 10 - 5 - 1, "allocated, less the freed, trimmed and TCS pages")
            #expect(web2.lazyPoolPages == 10)
            #expect(web2.tcsPages == 1)
            let (textStatus, text, _) = try Self.edmmctl(daemon, ["enclaves", "--sort", "committed"])
            #expect(textStatus == 0)
            let order = text.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true)[1] }
            #expect(order == ["batch", "web-2", "web-1", "idle"])
            for host in hosts { host.close() }
            #expect(daemon.stop() == 0)
        }

        @Test func showJSONByLabelOrIdMatchesSTATS() async throws {
            let daemon = try DaemonProcess(config: Self.steadyPool)
            let hosts = try await Self.fleet(daemon)
            let batch = hosts[2]
            let (status, output, errors) = try Self.edmmctl(daemon, ["show", "batch", "--json"])
            #expect(status == 0, "\(errors)")
            let shown = try Self.decode(ShowJSON.self, output)
            let connection = try await daemon.connect()
            let stats = try await connection.stats(batch.handle)
            connection.close()
            #expect(shown.enclave.id == batch.handle)
            #expect(shown.enclave.committedPages == stats.summary.committedPages)
            #expect(shown.enclave.lazyPoolPages == stats.summary.pooledPages)
            #expect(shown.managed.offset == stats.managed.offset && shown.managed.length == stats.managed.length)
            for counter in stats.counters where counter.name != "requests_stats_ok" {
                #expect(shown.counters[counter.name] == counter.value, "\(counter.name)")
            }
            #expect(shown.counters["requests_stats_ok"].map { $0 + 1 } == stats.counters.first { $0.name == "requests_stats_ok" }?.value)
            let (idStatus, byID, _) = try Self.edmmctl(daemon, ["show", "\(batch.handle)"])
            #expect(idStatus == 0)
            #expect(byID.contains("enclave \(batch.handle) \"batch\""))
            #expect(byID.contains("lazy pool"))
            let (missing, _, message) = try Self.edmmctl(daemon, ["show", "nosuch"])
            #expect(missing == 1)
            #expect(message.contains("nosuch"))
            for host in hosts { host.close() }
            #expect(daemon.stop() == 0)
        }

        @Test func reclaimAndReloadAreAnsweredAndReportedInJSON() async throws {
            let daemon = try DaemonProcess(config: Self.steadyPool)
            let hosts = try await Self.fleet(daemon)
            let (status, output, errors) = try Self.edmmctl(daemon, ["reclaim", "web-1", "--json"])
            #expect(status == 0, "\(errors)")
            struct Reclaimed: Decodable {
                var scheduledPages: UInt64
                var enclaves: UInt32
            }
            let reclaimed = try Self.decode(Reclaimed.self, output)
            #expect(reclaimed.scheduledPages == 10, "web-1 freed 10 pages into its pool")
            #expect(reclaimed.enclaves == 1)
            let (reloadStatus, reloaded, reloadErrors) = try Self.edmmctl(daemon, ["reload", "--json"])
            #expect(reloadStatus == 0, "\(reloadErrors)")
            #expect(reloaded.contains("edmmd.toml"))
            for host in hosts { host.close() }
            #expect(daemon.stop() == 0)
        }

        @Test(.enabled(if: getuid() == 0, "needs root to run edmmctl as another user"))
        func aSocketTheUserMayNotOpenExits77() async throws {
            let daemon = try DaemonProcess()
            let log = daemon.directory.path + "/nobody.log"
            let (status, _) = try runToCompletion(
                "/usr/bin/setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", try Products.path("edmmctl"), "--socket", daemon.socketPath,
                    "status",
                ],
                stderrPath: log)
            #expect(status == 77, "\(readFile(log) ?? "")")
            #expect(readFile(log)?.contains("permission denied") == true)
            #expect(daemon.stop() == 0)
        }

        @Test func topWithoutATerminalPrintsPlainFrames() async throws {
            let daemon = try DaemonProcess(config: Self.steadyPool)
            let hosts = try await Self.fleet(daemon)
            let (status, output, errors) = try Self.edmmctl(daemon, ["top", "--iterations", "2", "--interval", "0.2", "--sort", "label"])
            #expect(status == 0, "\(errors)")
            #expect(!output.contains("\u{1B}"))
            #expect(output.components(separatedBy: "requests/s").count == 3, "two frames")
            let rows = output.split(separator: "\n").filter { UInt64($0.split(separator: " ").first ?? "") != nil }
            #expect(rows.count == 8)
            #expect(rows.prefix(4).map { $0.split(separator: " ")[1] } == ["batch", "idle", "web-1", "web-2"])
            for host in hosts { host.close() }
            #expect(daemon.stop() == 0)
        }

        /// The shell's `top-exit=<status>` line, not the typed command's `top-exit=$?`.
        static var exitStatusPrinted: Regex<Substring> { /top-exit=[0-9]/ }

        @Test func topInARealTerminalSortsOnKeysQuitsOnQOrCtrlCAndRestoresTheTerminal() async throws {
            _ = try requireTool("/usr/bin/tmux")
            let daemon = try DaemonProcess(config: Self.steadyPool)
            let hosts = try await Self.fleet(daemon)
            let terminal = try TmuxTerminal()
            let command = "\(try Products.path("edmmctl")) --socket \(daemon.socketPath) top --interval 0.3; echo top-exit=$?"
            try terminal.type(command)
            let first = try terminal.waitForScreen { $0.contains("sort: committed") && $0.contains("idle") }
            #expect(first.contains("4 enclaves"))
            #expect(Self.labels(on: first) == ["batch", "web-2", "web-1", "idle"])

            try terminal.press("l")
            let byLabel = try terminal.waitForScreen { $0.contains("sort: label") }
            #expect(Self.labels(on: byLabel) == ["batch", "idle", "web-1", "web-2"])
            try terminal.press("n")
            let byID = try terminal.waitForScreen { $0.contains("sort: id") }
            #expect(Self.labels(on: byID) == ["web-1", "web-2", "batch", "idle"])

            try terminal.press("q")
            let after = try terminal.waitForScreen { $0.contains(Self.exitStatusPrinted) }
            #expect(after.contains("top-exit=0"))
            #expect(!after.contains("sort: id"), "the alternate screen is gone")
            try terminal.type(
                "stty -a | tr ' ;' '\\n\\n' | grep -x -e -icanon -e icanon -e -echo -e echo | sort | tr '\\n' ' '; echo :modes")
            let modes = try terminal.waitForScreen { $0.contains("icanon :modes") }
            #expect(modes.contains("echo icanon :modes"), "canonical mode and echo are back: \(modes)")

            try terminal.type("clear; " + command)
            _ = try terminal.waitForScreen { $0.contains("sort: committed") }
            try terminal.press("C-c")
            let interrupted = try terminal.waitForScreen { $0.contains(Self.exitStatusPrinted) }
            #expect(interrupted.contains("top-exit=0"))
            try terminal.type(
                "stty -a | tr ' ;' '\\n\\n' | grep -x -e -icanon -e icanon -e -echo -e echo | sort | tr '\\n' ' '; echo :again")
            let again = try terminal.waitForScreen { $0.contains("echo icanon :again") }
            #expect(again.contains("echo icanon :again"))
            for host in hosts { host.close() }
            #expect(daemon.stop() == 0)
        }

        /// The LABEL column of top's table, top to bottom.
        private static func labels(on screen: String) -> [String] {
            screen.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: " ")
                guard fields.count > 2, UInt64(fields[0]) != nil else { return nil }
                return String(fields[1])
            }
        }
    }
}
