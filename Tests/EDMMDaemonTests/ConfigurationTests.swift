import EDMMConfig
import EDMMDaemon
import Glibc
import Testing

/// Command-line overrides and the configuration source the executable and RELOAD share.
@Suite struct ConfigurationTests {
    @Test func flagsOverrideTheFile() throws {
        var config = DaemonConfig()
        let overrides = try ConfigOverrides.validated(
            socket: "/tmp/x.sock", simulate: true, noBatch: true, epcSize: "64MiB", metrics: "", logLevel: "debug")
        overrides.apply(to: &config)
        #expect(config.daemon.socket == "/tmp/x.sock")
        #expect(config.daemon.device == .simulated)
        #expect(config.batch.enabled == false)
        #expect(config.simulator.epcBytes == 64 << 20)
        #expect(config.metrics.listen == nil)
        #expect(config.daemon.logLevel == .debug)
    }

    @Test func flagValuesFollowTheRulesOfTheirKeysAndErrorsNameTheFlag() {
        #expect {
            try ConfigOverrides.validated(epcSize: "12", metrics: "nope", logLevel: "loud")
        } throws: { error in
            guard let errors = error as? ConfigErrors else { return false }
            return errors.errors.map(\.file) == ["--epc-size", "--metrics", "--log-level"]
        }
        #expect(throws: ConfigErrors.self) { try ConfigOverrides.validated(socket: "relative.sock") }
    }

    @Test func aMissingDefaultFileMeansDefaultsButAMissingExplicitFileIsAnError() throws {
        let missing = "/tmp/edmmd-no-such-config-\(getpid()).toml"
        var overrides = ConfigOverrides()
        overrides.noBatch = true
        let defaults = try ConfigSource(path: missing, explicit: false, overrides: overrides).load()
        #expect(defaults.batch.enabled == false)
        #expect(defaults.daemon.socket == DaemonConfig().daemon.socket)
        #expect(throws: ConfigErrors.self) { try ConfigSource(path: missing, explicit: true).load() }
    }
}
