import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

extension EndToEnd {
    /// Processes die with SIGKILL: clients in the middle of their trim flow, and edmmd itself in
    /// the middle of a batch. Nothing leaks, nothing drifts, and a restarted edmmd's ledgers come
    /// back equal to the simulated EPCM.
    @Suite struct CrashSafety {
        @Test func clientsKilledInTheMiddleOfTheTrimFlowLeakNoDescriptorAndNoPage() async throws {
            // A batch window long enough that a trim waits in edmmd's queue for a while.
            let daemon = try DaemonProcess(config: "[batch]\nwindow_us = 20000\n")
            let survivor = try await daemon.host("survivor")
            defer { survivor.close() }
            try await survivor.allocate(pages: 32)
            let observer = try await daemon.connect()
            defer { observer.close() }
            let machine = try SimulatedMachine.open(fd: try #require(observer.machineDescriptor))
            // Counted once the connection that found the daemon accepting has gone (the survivor's
            // and the observer's remain).
            let before = try await daemon.status(on: observer) { $0.connections == 2 }
            let descriptorsBefore = daemon.openDescriptors()
            let usedBefore = machine.stats.usedPages

            var caught: [String] = []
            for round in 0..<8 {
                let label = "victim-\(round)"
                let victim = try Spawned(
                    try Products.path("edmm-sim"),
                    [
                        "run-host", "--socket", daemon.socketPath, "--workload", "gc", "--seed", "\(round)", "--label", label,
                        "--working-set", "256",
                    ],
                    stderrPath: daemon.directory.path + "/\(label).log")
                #expect(victim.readLine()?.contains("ready") == true)
                // SIGKILL the moment edmmd has the victim's pages between EMODT(TRIM) and REMOVE:
                // trims queued or done and not yet confirmed, or removals queued.
                let enclave = try #require(try await observer.allEnclaves().first { $0.label == label }?.enclave)
                var inFlow: EnclaveStatsReply?
                for _ in 0..<2000 {
                    let stats = try await observer.stats(enclave)
                    let queued = stats.counters.first { $0.name == "queued_requests" }?.value ?? 0
                    if stats.summary.trimmingPages + stats.summary.removingPages > 0 && (round % 2 == 0 || queued > 0) {
                        inFlow = stats
                        break
                    }
                }
                victim.signal(SIGKILL)
                #expect(victim.wait() == 128 + SIGKILL)
                let stats = try #require(inFlow, "\(label) never had pages in its trim flow")
                caught.append(
                    """
                    \(stats.summary.trimmingPages) trimming, \(stats.summary.removingPages) removing, \
                    \(stats.counters.first { $0.name == "queued_requests" }?.value ?? 0) queued
                    """
                )

                let after = try await daemon.status(on: observer) { $0.enclaves == before.enclaves && $0.connections == before.connections }
                #expect(after.enclaves == before.enclaves && after.connections == before.connections, "after \(label)")
                #expect(after.epcCommittedBytes == before.epcCommittedBytes, "accounting drift after \(label)")
                var descriptors = daemon.openDescriptors()
                for _ in 0..<200 where descriptors != descriptorsBefore {
                    try await Task.sleep(for: .milliseconds(25))
                    descriptors = daemon.openDescriptors()
                }
                #expect(
                    descriptors == descriptorsBefore, "edmmd holds \(descriptors) descriptors after \(label), \(descriptorsBefore) before")
                // edmmd releases the dead client's enclave from the EPC at its next sweep.
                for _ in 0..<200 where machine.stats.usedPages != usedBefore { try await Task.sleep(for: .milliseconds(25)) }
                #expect(machine.stats.usedPages == usedBefore, "EPC pages in use after \(label)")
            }
            #expect(caught.count == 8, "killed at: \(caught)")
            #expect(machine.checkInvariants().isEmpty)
            await expectLedgersMatch([survivor])
            #expect(daemon.stop() == 0)
        }

        @Test func aClientKilledInTheMiddleOfAFleetLeavesNothingOnceTheFleetIsGone() async throws {
            let daemon = try DaemonProcess()
            let observer = try await daemon.connect()
            defer { observer.close() }
            let machine = try SimulatedMachine.open(fd: try #require(observer.machineDescriptor))
            // Counted once the connection that found the daemon accepting has gone.
            _ = try await daemon.status(on: observer) { $0.connections == 1 }
            let descriptorsBefore = daemon.openDescriptors()
            let fleet = try (0..<4).map { index in
                try Spawned(
                    try Products.path("edmm-sim"),
                    [
                        "run-host", "--socket", daemon.socketPath, "--workload", index % 2 == 0 ? "server" : "fragmented", "--seed",
                        "\(index)",
                        "--label", "fleet-\(index)", "--working-set", "256",
                    ],
                    stderrPath: daemon.directory.path + "/fleet-\(index).log")
            }
            for host in fleet { #expect(host.awaitReady()) }
            try await Task.sleep(for: .milliseconds(300))
            fleet[1].signal(SIGKILL)
            #expect(fleet[1].wait() == 128 + SIGKILL)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await observer.status().enclaves == 3, "the others carry on")
            for (index, host) in fleet.enumerated() where index != 1 {
                let report = try #require(host.stopAndReport(), "fleet-\(index) reported nothing")
                #expect(
                    report.hostMatchesEPCM && report.ledger.problems.isEmpty && report.problems.isEmpty,
                    "fleet-\(index): \(report.problems)")
            }
            let after = try await daemon.status(on: observer) { $0.enclaves == 0 && $0.connections == 1 }
            #expect(
                after.enclaves == 0 && after.epcCommittedBytes == 0, "\(after.enclaves) enclaves and \(after.epcCommittedBytes) bytes left")
            var descriptors = daemon.openDescriptors()
            for _ in 0..<200 where descriptors != descriptorsBefore {
                try await Task.sleep(for: .milliseconds(25))
                descriptors = daemon.openDescriptors()
            }
            #expect(descriptors == descriptorsBefore)
            for _ in 0..<200 where machine.stats.usedPages != 0 { try await Task.sleep(for: .milliseconds(25)) }
            #expect(machine.stats.usedPages == 0 && machine.stats.aliveEnclaves == 0)
            #expect(daemon.stop() == 0)
        }

        @Test func edmmdKilledInTheMiddleOfABatchAndRestartedComesBackWithLedgersEqualToTheEPCM() async throws {
            // Without systemd: the restarted edmmd takes the hosts' simulated EPC over from
            // their HELLO, and each host registers its enclave again, adopting its pages.
            let daemon = try RestartableDaemon(config: "[batch]\nwindow_us = 50000\n")
            var hosts: [ChurningHost] = []
            for index in 0..<4 { hosts.append(try await ChurningHost(socketPath: daemon.socketPath, label: "churn-\(index)")) }
            let machine = hosts[0].host.machine

            for restart in 1...3 {
                try await Task.sleep(for: .milliseconds(300))
                // Kill while a batch is queued: some enclave has requests waiting for its window.
                let observer = try await EDMMConnection.connect(socketPath: daemon.socketPath, clientName: "e2e observer")
                var queued: UInt64 = 0
                for _ in 0..<2000 where queued == 0 {
                    for enclave in try await observer.allEnclaves() {
                        queued += (try? await observer.stats(enclave.enclave))?.counters.first { $0.name == "queued_requests" }?.value ?? 0
                    }
                }
                observer.close()
                daemon.kill()
                #expect(queued > 0, "restart \(restart): no batch was queued when edmmd died")
                try daemon.start()
                for host in hosts {
                    for _ in 0..<1200 where host.host.reconnections < restart { try await Task.sleep(for: .milliseconds(25)) }
                    #expect(host.host.reconnections == restart, "\(host.host.blueprint.label) did not come back after restart \(restart)")
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            for host in hosts {
                let failures = await host.stop()
                #expect(failures.isEmpty, "\(host.host.blueprint.label): \(failures.prefix(5))")
            }
            // Each host's record, edmmd's ledger (its own page-by-page check included) and the EPCM agree.
            await expectLedgersMatch(hosts.map(\.host))
            let observer = try await EDMMConnection.connect(socketPath: daemon.socketPath, clientName: "e2e observer")
            defer { observer.close() }
            let status = try await observer.status()
            var ledgerPages: UInt64 = 0
            for enclave in try await observer.allEnclaves() {
                ledgerPages +=
                    enclave.committedPages + enclave.pooledPages + enclave.trimmingPages + enclave.removingPages + enclave.tcsPages
            }
            #expect(status.enclaves == 4 && status.epcCommittedBytes == ledgerPages * Page.size)
            #expect(machine.checkInvariants().isEmpty)
            for host in hosts { host.host.close() }
            let after = try await EDMMConnection.connect(socketPath: daemon.socketPath, clientName: "e2e observer")
            var last = try await after.status()
            for _ in 0..<400 where last.enclaves != 0 {
                try await Task.sleep(for: .milliseconds(25))
                last = try await after.status()
            }
            after.close()
            #expect(last.enclaves == 0 && last.epcCommittedBytes == 0)
            #expect(daemon.stop() == 0)
        }
    }
}
