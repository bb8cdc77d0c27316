import EDMMCore
import EDMMDaemon
import EDMMProtocol
import Glibc
import Testing

/// STATUS, ENCLAVES, STATS and METRICS.
@Suite struct ViewTests {
    @Test func statusReportsModeReasonEPCAndActivity() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            _ = try client.allocate(AllocateRequest(enclave: handle, length: 10 * 4096))
            let status = try client.status()
            #expect(status.mode == .simulated)
            #expect(status.modeReason.contains("simulated"))
            #expect(status.daemonVersion == EDMMDVersion.string)
            #expect(status.enclaves == 1)
            #expect(status.connections == 1)
            #expect(status.epcTotalBytes == 16 << 20)
            #expect(status.epcCommittedBytes == 10 * 4096)
            #expect(status.batching)
            #expect(status.requestsTotal >= 3)
            #expect(status.counter("requests_allocate_ok") == 1)
            #expect(status.counter("enclaves_registered") == 1)
        }
    }

    @Test func enclavesArePagedInHandleOrder() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let machine = try daemon.machine(from: client)
            var handles: [EnclaveHandle] = []
            var enclaves: [TestEnclave] = []
            for index in 0..<5 {
                let enclave = try TestEnclave(machine: machine, base: UInt64(index + 1) << 32)
                enclaves.append(enclave)
                handles.append(try client.register(enclave, label: "e\(index)").0)
            }
            var seen: [EnclaveHandle] = []
            var startAfter: EnclaveHandle = 0
            repeat {
                guard case .enclaves(let page) = try client.expect(.enclaves(EnclaveListRequest(startAfter: startAfter, maxCount: 2)))
                else {
                    return
                }
                #expect(page.total == 5)
                #expect(page.enclaves.count <= 2)
                seen += page.enclaves.map(\.enclave)
                startAfter = page.nextStartAfter
            } while startAfter != 0
            #expect(seen == handles)
            // One page with all of them (short labels: the smallest summaries).
            guard case .enclaves(let all) = try client.expect(.enclaves(EnclaveListRequest())) else { return }
            #expect(all.enclaves.map(\.enclave) == handles)
            #expect(all.nextStartAfter == 0)
        }
    }

    @Test func statsNamesEveryDocumentedCounter() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let names = Set(try client.stats(handle).counters.map(\.name))
            for verb in Verb.allCases {
                let name = "\(verb)".lowercased()
                #expect(names.contains("requests_\(name)_ok") && names.contains("requests_\(name)_failed"))
            }
            for kind in ["modify_types", "restrict_permissions", "remove_pages"] {
                #expect(names.contains("ioctl_\(kind)_calls") && names.contains("ioctl_\(kind)_pages"))
            }
            for name in [
                "retries_ebusy", "retries_eagain", "retries_eintr", "ioctl_errors", "reclaimed_pages", "sim_eenter",
                "sim_eexit", "sim_aex", "sim_eaug", "sim_eaccept", "sim_etrack", "sim_ipis", "sim_ewb", "sim_eldu",
                "ledger_epcm_mismatches", "ledger_epcm_checked_pages",
            ] {
                #expect(names.contains(name), "\(name)")
            }
        }
    }

    @Test func metricsArePagedThroughOneRenderingInChunks() async throws {
        let text = String(repeating: "edmmd_example_metric{enclave=\"1\"} 42\n", count: 3000)
        try await withDaemon({ $0.limits.maxMessageBytes = 16_384 }, metricsText: { _ in text }) { daemon in
            let client = try daemon.connect()
            var collected = ""
            var offset: UInt32 = 0
            var chunks = 0
            repeat {
                guard case .metrics(let chunk) = try client.expect(.metrics(MetricsRequest(offset: offset))) else { return }
                #expect(chunk.totalBytes == UInt32(text.utf8.count))
                collected += chunk.text
                offset += UInt32(chunk.text.utf8.count)
                chunks += 1
            } while offset < UInt32(text.utf8.count)
            #expect(collected == text)
            #expect(chunks > 1)
        }
    }

    @Test func metricsWithoutAnExpositionIsAClearError() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            #expect(try client.expectError(.metrics(MetricsRequest())).code == .invalidArgument)
        }
    }

    @Test func rangeErrorsAreTypedPrecisely() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, registered) = try client.register(enclave, preheatPages: 2)
            enclave.acceptFresh(registered.preheat)
            let page = registered.preheat[0]
            #expect(
                try client.expectError(.trim(RangeRequest(enclave: handle, range: WireRange(offset: 100, length: 4096)))).code
                    == .notAligned)
            #expect(
                try client.expectError(.trim(RangeRequest(enclave: handle, range: WireRange(offset: 0, length: 0)))).code == .notAligned)
            #expect(
                try client.expectError(.trim(RangeRequest(enclave: handle, range: WireRange(offset: enclave.size, length: 4096)))).code
                    == .outOfRange)
            #expect(
                try client.expectError(.free(RangeRequest(enclave: handle, range: WireRange(offset: UInt64.max - 4095, length: 8192)))).code
                    == .outOfRange)
            let notTrimmed = try client.expectError(.trimAccepted(RangeRequest(enclave: handle, range: page)))
            #expect(notTrimmed.code == .invalidPageState)
            #expect(notTrimmed.detail == .page(offset: page.offset, state: "committed rw-"))
            let hole = try client.expectError(.free(RangeRequest(enclave: handle, range: pages(100, 1))))
            #expect(hole.detail == .page(offset: 100 * 4096, state: "hole"))
            let writeOnly = try client.expectError(.restrict(PermissionsRequest(enclave: handle, range: page, permissions: .write)))
            #expect(writeOnly.code == .invalidArgument)
            let noReplyTrim = try client.call(.trim(RangeRequest(enclave: handle, range: page)), flags: .noReply)
            #expect(noReplyTrim.error?.code == .invalidFlags)
        }
    }

    @Test func aFireAndForgetFreeIsNotAnsweredUnlessItFails() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, registered) = try client.register(enclave, preheatPages: 1)
            enclave.acceptFresh(registered.preheat)
            let silent = try client.send([.free(RangeRequest(enclave: handle, range: registered.preheat[0]))], flags: .noReply)[0]
            let failing = try client.send([.free(RangeRequest(enclave: handle, range: pages(500, 1)))], flags: .noReply)[0]
            #expect(try client.response(to: failing).error?.code == .invalidPageState)
            _ = try client.done(.sync(handle))
            #expect(!client.unclaimedResponses.contains { $0.id == silent })
            #expect(try client.stats(handle).summary.pooledPages == 1)
        }
    }

    @Test func unknownVerbsFailAloneAndTheRestOfTheMessageProceeds() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let status = MessageCodec.encode(RequestOperation(id: 2, .status))
            var bogus = MessageCodec.encode(RequestOperation(id: 1, .status))
            bogus[0] = 99
            try client.sendRaw(MessageCodec.frame(.request, operations: [bogus, status]))
            #expect(try client.response(to: 1).error?.code == .unknownVerb)
            #expect(try client.response(to: 2).error == nil)
        }
    }
}
