import EDMMClient
import EDMMProtocol
import EDMMSimHost
import Glibc
import SGXSimulator
import Testing

extension EndToEnd {
    @Suite struct Lifecycle {
        @Test func aClientKilledWithSIGKILLReturnsItsAccountingExactly() async throws {
            let daemon = try DaemonProcess()
            let survivor = try await daemon.host("survivor")
            defer { survivor.close() }
            try await survivor.allocate(pages: 40)
            let observer = try await daemon.connect()
            defer { observer.close() }
            let machine = try SimulatedMachine.open(fd: try #require(observer.machineDescriptor))
            let before = try await observer.status()
            let descriptorsBefore = daemon.openDescriptors()
            let usedBefore = machine.stats.usedPages

            let victim = try Spawned(
                try Products.path("edmm-sim"),
                [
                    "run-host", "--socket", daemon.socketPath, "--workload", "server", "--seed", "7", "--label", "victim", "--working-set",
                    "256",
                ],
                stderrPath: daemon.directory.path + "/victim.log")
            #expect(victim.readLine()?.contains("ready") == true)
            // Let it commit memory: a few progress reports with requests in them.
            var progressLines = 0
            while progressLines < 3, let line = victim.readLine() { if line.contains("progress") { progressLines += 1 } }
            let during = try await observer.status()
            #expect(during.enclaves == before.enclaves + 1)
            #expect(during.epcCommittedBytes > before.epcCommittedBytes)

            victim.signal(SIGKILL)
            #expect(victim.wait() == 128 + SIGKILL)
            let after = try await daemon.status(on: observer) { $0.enclaves == before.enclaves && $0.connections == before.connections }
            #expect(after.enclaves == before.enclaves)
            #expect(after.connections == before.connections)
            #expect(after.epcCommittedBytes == before.epcCommittedBytes)
            var descriptorsAfter = daemon.openDescriptors()
            for _ in 0..<100 where descriptorsAfter != descriptorsBefore {
                try await Task.sleep(for: .milliseconds(50))
                descriptorsAfter = daemon.openDescriptors()
            }
            #expect(descriptorsAfter == descriptorsBefore)
            // edmmd releases the dead client's enclave from the EPC at its next sweep.
            for _ in 0..<200 where machine.stats.usedPages != usedBefore { try await Task.sleep(for: .milliseconds(25)) }
            #expect(machine.stats.usedPages == usedBefore)
            await expectLedgersMatch([survivor])
            #expect(daemon.stop() == 0)
        }

        @Test func edmmdExitsZeroOnSIGTERMWithClientsConnected() async throws {
            let daemon = try DaemonProcess()
            let host = try await daemon.host("connected")
            defer { host.close() }
            try await host.allocate(pages: 16)
            _ = try await host.run(.trim(try await host.allocate(pages: 8)))
            #expect(daemon.stop() == 0)
            #expect(access(daemon.socketPath, F_OK) != 0, "edmmd left its socket behind")
            await #expect(throws: EnclaveHostError.self) { try await host.sync() }
        }
    }
}
