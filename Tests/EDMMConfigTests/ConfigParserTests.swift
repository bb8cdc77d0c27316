import Testing

@testable import EDMMConfig

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ConfigParserTests {
    private func errors(_ toml: String) -> [ConfigError] {
        do {
            _ = try DaemonConfig.parse(toml: toml, fileName: "test.toml")
            return []
        } catch {
            return error.errors
        }
    }

    @Test func anEmptyFileGivesTheDefaults() throws {
        #expect(try DaemonConfig.parse(toml: "", fileName: "empty.toml") == DaemonConfig())
    }

    @Test func theShippedConfigDocumentsEveryKeyWithItsDefault() throws {
        let path = #filePath.replacingOccurrences(of: "Tests/EDMMConfigTests/ConfigParserTests.swift", with: "config/edmmd.toml")
        #expect(try DaemonConfig.load(path: path) == DaemonConfig())
        let text = try #require(try? String(decoding: readAll(path), as: UTF8.self))
        for key in ConfigSchema.keys {
            #expect(text.contains("\n\(key.name) = "), "config/edmmd.toml does not document \(key.section).\(key.name)")
        }
        #expect(text.contains("[quota.uid_overrides]"))
    }

    @Test func valuesAreAppliedToTheirFields() throws {
        let config = try DaemonConfig.parse(
            toml: """
                [daemon]
                socket = "/tmp/x.sock"
                socket_mode = 0o600
                device = "simulated"
                [simulator]
                epc_size = "64MiB"
                [batch]
                enabled = false
                window_us = 250
                [quota]
                enclave = "1GiB"
                uid = 8192
                [quota.uid_overrides]
                1000 = "512MiB"
                [metrics]
                listen = ""
                """, fileName: "t.toml")
        #expect(config.daemon.socket == "/tmp/x.sock")
        #expect(config.daemon.socketMode == 0o600)
        #expect(config.daemon.device == .simulated)
        #expect(config.simulator.epcBytes == 64 << 20)
        #expect(config.batch.enabled == false)
        #expect(config.batch.windowMicros == 250)
        #expect(config.quota.enclaveBytes == 1 << 30)
        #expect(config.quota.uidBytes == 8192)
        #expect(config.quota.uidOverrides == [1000: 512 << 20])
        #expect(config.metrics.listen == nil)
    }

    @Test func simulatorFaultRatesAreChancesFromZeroToOne() throws {
        let config = try DaemonConfig.parse(
            toml: """
                [simulator]
                fault_load_ebusy = 0.05
                fault_unmark_reclaimable = 1
                fault_eaug_sigbus = 0.5
                fault_epc_page_conflict = 0
                fault_seed = 7
                """, fileName: "t.toml")
        #expect(config.simulator.faults.loadBusy == 0.05)
        #expect(config.simulator.faults.reclaimerHoldsPage == 1)
        #expect(config.simulator.faults.eaugFailure == 0.5)
        #expect(config.simulator.faults.pageConflict == 0)
        #expect(config.simulator.faults.seed == 7)
        #expect(DaemonConfig().simulator.faults == DaemonConfig.Faults())
        let e = errors("[simulator]\nfault_eaug_sigbus = 1.5\nfault_load_ebusy = \"often\"\n")
        #expect(
            e.map(\.description) == [
                "test.toml:2: [simulator] fault_eaug_sigbus: 1.5 is out of range; allowed 0...1",
                "test.toml:3: [simulator] fault_load_ebusy: expected a number from 0 to 1, got the string \"often\"",
            ])
    }

    @Test func anUnknownKeyIsAnErrorWithItsLineAndASuggestion() {
        let e = errors("[batch]\nenabled = true\nwindow_uss = 5\n")
        #expect(e.count == 1)
        #expect(e.first?.line == 3)
        #expect(e.first?.description == "test.toml:3: unknown key 'window_uss' in [batch]; did you mean 'window_us'?")
    }

    @Test func anUnknownSectionIsAnError() {
        let e = errors("\n[batching]\nenabled = true\n")
        #expect(e.first?.line == 2)
        #expect(e.first?.message.hasPrefix("unknown section [batching]; did you mean 'batch'?") == true)
    }

    @Test func aTopLevelKeyIsAnError() {
        #expect(errors("socket = \"/x\"\n").first?.message.contains("must be a section") == true)
    }

    @Test func aValueOfTheWrongTypeNamesTheKeyAndTheValue() {
        let e = errors("[batch]\n# comment\nwindow_us = \"fast\"\n")
        #expect(e.first?.description == "test.toml:3: [batch] window_us: expected an integer, got the string \"fast\"")
    }

    @Test func anOutOfRangeValueIsAnError() {
        #expect(
            errors("[pool]\nthreshold_percent = 101\n").first?.message == "[pool] threshold_percent: 101 is out of range; allowed 0...100")
    }

    @Test func aSizeThatIsNotAPageMultipleIsAnError() {
        #expect(errors("[quota]\nenclave = 5000\n").first?.message == "[quota] enclave: 5000 bytes is not a multiple of 4096")
    }

    @Test func aMalformedSizeStringIsAnError() {
        #expect(errors("[simulator]\nepc_size = \"lots\"\n").first?.message.contains("is not a size") == true)
    }

    @Test func sizesTakeBinaryUnitsAloneWithIOrWithIB() throws {
        for text in ["128M", "128Mi", "128MiB", "128 MiB", " 128M ", "131072K", "134217728", "134217728B"] {
            #expect(try ConfigValue.parseSize(text) == 128 << 20, "\(text)")
        }
        #expect(try ConfigValue.parseSize("2G") == 2 << 30)
        #expect(try ConfigValue.parseSize("1Ti") == 1 << 40)
        #expect(try DaemonConfig.parse(toml: "[simulator]\nepc_size = \"64M\"\n", fileName: "t.toml").simulator.epcBytes == 64 << 20)
    }

    @Test func nonsenseSizesAreRefusedWithWhatToWriteInstead() {
        func message(_ text: String) -> String {
            do throws(ConfigValue.SizeError) {
                _ = try ConfigValue.parseSize(text)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(message("128MB").contains("ambiguous") && message("128MB").contains("\"128M\" or \"128MiB\""))
        #expect(message("1.5G").contains("whole number"))
        #expect(message("128mib").contains("case-sensitive: \"128MiB\""))
        #expect(message("128 parsecs").contains("unknown unit \"parsecs\""))
        #expect(message("MiB").contains("does not start with a number"))
        #expect(message("-4K").contains("negative"))
        #expect(message("").contains("empty"))
        #expect(message("99999999999999999999").contains("too large"))
        #expect(message("16384P").contains("unknown unit"))
        #expect(message("17179869184G").contains("more than 16 EiB"))
        #expect(errors("[simulator]\nepc_size = \"64MB\"\n").first?.message.contains("ambiguous") == true)
    }

    @Test func anUnknownDeviceModeListsTheChoices() {
        #expect(
            errors("[daemon]\ndevice = \"gpu\"\n").first?.message
                == "[daemon] device: \"gpu\" is not one of \"auto\", \"kernel\", \"simulated\"")
    }

    @Test func aSyntaxErrorCarriesTheParsersLine() {
        let e = errors("[batch]\nenabled = true\nwindow_us = = 3\n")
        #expect(e.first?.line == 3)
        #expect(e.first?.message.hasPrefix("syntax error") == true)
    }

    @Test func watermarksMustBeOrdered() {
        let e = errors("[pressure]\nhigh_watermark_percent = 50\nlow_watermark_percent = 60\n")
        #expect(e.first?.line == 3)
        #expect(e.first?.message.contains("must be below high_watermark_percent") == true)
    }

    @Test func growthChunksMustBeOrdered() {
        #expect(errors("[growth]\nmin_chunk_pages = 64\nmax_chunk_pages = 8\n").first?.line == 2)
    }

    @Test func growthHeldPercentIsAPercentage() throws {
        #expect(try DaemonConfig.parse(toml: "[growth]\nheld_percent = 40\n", fileName: "t.toml").growth.heldPercent == 40)
        #expect(errors("[growth]\nheld_percent = 101\n").first?.line == 2)
    }

    @Test func aNonNumericUIDOverrideIsAnError() {
        #expect(errors("[quota.uid_overrides]\nalice = \"1MiB\"\n").first?.line == 2)
    }

    @Test func everyProblemIsReportedInLineOrder() {
        let e = errors("[batch]\nwindow_us = -1\n[pool]\nthreshold_percent = true\n[nope]\n")
        #expect(e.compactMap(\.line) == [2, 4, 5])
    }

    @Test func aSocketPathLongerThanSunPathIsRefused() {
        #expect(errors("[daemon]\nsocket = \"/\(String(repeating: "a", count: 120))\"\n").first?.message.contains("107 bytes") == true)
    }

    @Test func aBadMetricsAddressIsRefused() {
        #expect(errors("[metrics]\nlisten = \"localhost\"\n").first?.message.contains("is not HOST:PORT") == true)
        #expect(HostPort("[::1]:9464") == HostPort("[::1]:9464"))
        #expect(HostPort("[::1]:9464")?.host == "::1")
    }

    @Test func aMissingFileIsAnErrorWithoutALine() {
        do {
            _ = try DaemonConfig.load(path: "/nonexistent/edmmd.toml")
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.errors.first?.line == nil)
            #expect(error.errors.first?.description.hasPrefix("/nonexistent/edmmd.toml: cannot read") == true)
        }
    }
}

func readAll(_ path: String) throws -> [UInt8] {
    guard let file = fopen(path, "r") else { throw ConfigValueError("cannot open \(path)") }
    defer { fclose(file) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, file)
        if n == 0 { break }
        out += buffer[0..<n]
    }
    return out
}

@Suite struct TOMLPreflightTests {
    private func firstError(_ toml: String) -> ConfigError? {
        do {
            _ = try DaemonConfig.parse(toml: toml, fileName: "t.toml")
            return nil
        } catch {
            return error.errors.first
        }
    }

    /// Inputs like these abort the process inside TOMLKit 0.6.0's toml++ (tomlplusplus#301 and
    /// relatives); they must be refused before it sees them.
    @Test(arguments: ["[=", "[[=", "[[[1]]]", "a=[}", "'='=[}", "[batch\n", "[.a]", "[a..b]", "[a] x", "\u{FEFF}[=", "a = 1\r\n[=\r\n"])
    func inputsThatCrashTOMLKitAreSyntaxErrors(_ text: String) {
        let error = firstError(text)
        #expect(error?.message.hasPrefix("syntax error") == true)
    }

    @Test func theSupportedSubsetPasses() {
        let text =
            """
            # c\n[batch] # c\n[ \"quota\" . uid_overrides ]\n1000 = \"512MiB\" # c\nx.y = 'lit'\na = -0x1F\nb = 1_000\nc = true\nd = \
            \"e\\\"f\"\n
            """
        #expect(TOMLPreflight.firstProblem(in: text) == nil)
    }

    @Test func arraysInlineTablesAndMultiLineStringsAreRefusedWithTheirNames() {
        #expect(TOMLPreflight.firstProblem(in: "a = [1]")?.message == "arrays are not used in edmmd's configuration")
        #expect(TOMLPreflight.firstProblem(in: "a = { b = 1 }")?.message.hasPrefix("inline tables") == true)
        #expect(TOMLPreflight.firstProblem(in: "a = \"\"\"x\"\"\"")?.message == "multi-line strings are not used in edmmd's configuration")
        #expect(TOMLPreflight.firstProblem(in: "\n[[x]]")?.line == 2)
    }
}
