import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc
import SGXDevice
import Testing

extension EndToEnd {
    /// Batching, measured with the simulator's own ioctl counters.
    @Suite struct Batching {
        /// `edmm-sim run` with eight host processes against `daemon`.
        func runFleet(_ daemon: DaemonProcess) throws -> (status: Int32, run: RunJSON) {
            let (status, output) = try runToCompletion(
                try Products.path("edmm-sim"),
                ["run", "--socket", daemon.socketPath, "--enclaves", "8", "--workload", "fragmented", "--duration", "2", "--json"],
                stderrPath: daemon.directory.path + "/run.log")
            return (status, try RunJSON.decode(output))
        }

        @Test func eightClientsOnAFragmentedHeapNeedFewerIoctlsThanRequestsWithBatching() async throws {
            let daemon = try DaemonProcess()
            let (status, run) = try runFleet(daemon)
            #expect(status == 0, "\(run.problems)")
            #expect(run.enclaves == 8)
            #expect(run.batching)
            #expect(run.ioctls > 0)
            #expect(run.ioctls < run.ioctlRequests)
            #expect(run.ioctls < run.requests)
            #expect(run.pagesPerIoctl > 1)
            #expect(run.maxRequestsPerIoctl > 1)
            #expect(run.ledgerMatchesEpcm, "\(run.problems)")
            #expect(daemon.stop() == 0)
        }

        @Test func withoutBatchingNoIoctlServesMoreThanOneRequest() async throws {
            let daemon = try DaemonProcess(flags: ["--no-batch"])
            let (status, run) = try runFleet(daemon)
            #expect(status == 0, "\(run.problems)")
            #expect(!run.batching)
            #expect(run.ioctls > 0)
            #expect(run.maxRequestsPerIoctl == 1)
            #expect(run.ioctls >= run.ioctlRequests)
            #expect(run.ledgerMatchesEpcm, "\(run.problems)")
            #expect(daemon.stop() == 0)
        }

        /// Eight connections attached to one enclave each trim one page; with a window long
        /// enough, one flush serves them all. The enclave's EACCEPTs are done here directly, so
        /// only edmmd's ledger (not the host's record, which did not see these trims) is compared.
        @Test(arguments: [true, false])
        func trimsFromEightConnectionsOfOneEnclaveShareAnIoctl(batching: Bool) async throws {
            let daemon = try DaemonProcess(
                config: "[batch]\nwindow_us = 1000000\nmax_pages = 8\n", flags: batching ? [] : ["--no-batch"])
            let host = try await daemon.host("shared")
            defer { host.close() }
            let pages = try await host.allocate(pages: 8)
            var connections = [host.connection]
            for _ in 1..<8 {
                let connection = try await daemon.connect()
                _ = try await connection.attach(host.handle)
                connections.append(connection)
            }
            defer { connections.dropFirst().forEach { $0.close() } }
            let before = host.enclave.counters

            let trims = try await eachConnection(connections, pages) { c, page in try await c.trim(host.handle, WireRange(page)) }
            for page in pages.first..<pages.end {
                #expect(host.cpu.eaccept(host.enclave.base + page * 4096, flags: [.pageType(.trim), .modified]) == .success)
            }
            let removals = try await eachConnection(connections, pages) { c, page in try await c.trimAccepted(host.handle, WireRange(page))
            }

            let spent = host.enclave.counters.since(before)
            if batching {
                #expect(trims.allSatisfy { $0.batchedRequests == 8 })
                #expect(removals.allSatisfy { $0.batchedRequests == 8 })
                #expect(spent[.ioctlModifyTypes] == 1)
                #expect(spent[.ioctlRemovePages] == 1)
            } else {
                #expect(trims.allSatisfy { $0.batchedRequests == 1 })
                #expect(spent[.ioctlModifyTypes] == 8)
                #expect(spent[.ioctlRemovePages] == 8)
            }
            #expect(host.enclave.pageInfo(offset: pages.byteOffset).state == .hole)
            let stats = try await host.connection.stats(host.handle)
            let ledger = LedgerComparison(stats: stats, epcm: host.compareWithEPCM())
            #expect(ledger.matches, "\(ledger.problems)")
            #expect(daemon.stop() == 0)
        }

        /// Sends `request` for page i of `pages` on connection i, all at once.
        private func eachConnection(
            _ connections: [EDMMConnection], _ pages: PageRange,
            _ request: @escaping @Sendable (EDMMConnection, PageRange) async throws -> DoneReply
        ) async throws -> [DoneReply] {
            try await withThrowingTaskGroup(of: DoneReply.self) { group in
                for (index, connection) in connections.enumerated() {
                    let page = PageRange(first: pages.first + UInt64(index), count: 1)
                    group.addTask { try await request(connection, page) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
    }
}
