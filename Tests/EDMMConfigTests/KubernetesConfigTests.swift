import Testing

@testable import EDMMConfig

/// `[kubernetes]`: off by default; a fail-closed default quota for containers; per-enclave
/// series opt-in once it is on.
@Suite struct KubernetesConfigTests {
    @Test func kubernetesModeIsOffAndTheDefaultContainerQuotaIsZero() throws {
        let config = try DaemonConfig.parse(toml: "", fileName: "empty.toml")
        #expect(!config.kubernetes.enabled)
        #expect(config.kubernetes.defaultContainerBytes == 0)
        #expect(config.metrics.perEnclave)
    }

    @Test(arguments: [("\"unlimited\"", UInt64?.none), ("\"64MiB\"", UInt64(64 << 20)), ("0", UInt64(0))])
    func theDefaultContainerQuotaIsASizeOrUnlimited(_ value: String, _ bytes: UInt64?) throws {
        let config = try DaemonConfig.parse(toml: "[kubernetes]\ndefault_container_quota = \(value)\n", fileName: "k.toml")
        #expect(config.kubernetes.defaultContainerBytes == bytes)
    }

    @Test func aDefaultQuotaOfPartPagesIsRefused() {
        #expect(throws: ConfigErrors.self) {
            try DaemonConfig.parse(toml: "[kubernetes]\ndefault_container_quota = 1000\n", fileName: "k.toml")
        }
    }

    @Test func perEnclaveSeriesAreOptInInKubernetesMode() throws {
        let off = try DaemonConfig.parse(toml: "[kubernetes]\nenabled = true\n", fileName: "k.toml")
        #expect(off.kubernetes.enabled && !off.metrics.perEnclave)
        let on = try DaemonConfig.parse(toml: "[kubernetes]\nenabled = true\n[metrics]\nper_enclave = true\n", fileName: "k.toml")
        #expect(on.metrics.perEnclave)
    }
}
