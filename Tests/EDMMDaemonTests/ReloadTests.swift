import EDMMCore
import EDMMProtocol
import Testing

/// RELOAD (and SIGHUP) re-read the configuration: live settings apply at once, the rest is reported
/// as needing a restart, and an invalid file changes nothing.
@Suite struct ReloadTests {
    @Test func reloadAppliesBatchingAndQuotasAtOnce() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            try daemon.writeConfig(
                """
                [daemon]
                socket = "\(daemon.socketPath)"
                device = "simulated"
                [simulator]
                epc_size = "16MiB"
                max_enclaves = 256
                [batch]
                enabled = false
                [quota]
                enclave = "64KiB"
                """)
            guard case .reload(let reply) = try client.expect(.reload) else { return }
            #expect(reply.summary.contains("applied"))
            #expect(reply.summary.contains("batch"))
            #expect(reply.summary.contains("quota"))
            #expect(try client.status().batching == false)
            let error = try client.expectError(.allocate(AllocateRequest(enclave: handle, length: 32 * 4096)))
            #expect(error.detail == .quota(scope: .enclave, askedPages: 32, usedPages: 0, limitPages: 16))
        }
    }

    @Test func settingsThatCannotChangeLiveAreReportedAsNeedingARestart() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            try daemon.writeConfig(
                """
                [daemon]
                socket = "/run/elsewhere.sock"
                """)
            guard case .reload(let reply) = try client.expect(.reload) else { return }
            #expect(reply.summary.contains("needs restart: daemon.socket"))
        }
    }

    @Test func anInvalidFileKeepsTheOldConfigurationAndSaysWhereItIsWrong() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            try daemon.writeConfig(
                """
                [batch]
                enabled = false
                windw_us = 5
                """)
            let error = try client.expectError(.reload)
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("edmmd.toml:3"))
            #expect(try client.status().batching == true)
        }
    }
}
