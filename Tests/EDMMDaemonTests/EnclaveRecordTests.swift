import EDMMCore
import EDMMDaemon
import EDMMProtocol
import Testing

/// The per-enclave record systemd's FD store keeps: it round-trips and rebuilds the same ledger.
@Suite struct EnclaveRecordTests {
    @Test func aRecordRoundTripsAndRebuildsTheLedgerItDescribes() async throws {
        try await withDaemon({ $0.batch.windowMicros = 1_000_000 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave, label: "kept")
            let grant = try client.allocate(AllocateRequest(enclave: handle, offset: 0, length: 12 * 4096))
            enclave.acceptFresh(grant.fresh)
            _ = try client.done(.free(RangeRequest(enclave: handle, range: pages(0, 4))))
            _ = try client.done(.makeTCS(RangeRequest(enclave: handle, range: pages(4, 1))))
            _ = try client.done(.trim(RangeRequest(enclave: handle, range: pages(5, 2))))
            // Queued, never run: recorded as it was before.
            _ = try client.send([.restrict(PermissionsRequest(enclave: handle, range: pages(7, 2), permissions: .read))])

            let records = await daemon.daemon.enclaveRecords()
            let record = try #require(records.first)
            #expect(record.handle == handle)
            #expect(record.label == "kept")
            let decoded = try EnclaveRecord(decoding: record.encoded())
            #expect(decoded == record)
            let ledger = try decoded.rebuildLedger()
            #expect(ledger.counts.pooled == 4)
            #expect(ledger.counts.tcs == 1)
            #expect(ledger.counts.trimmed == 2)
            #expect(ledger.counts.committed == 5)
            #expect(ledger.state(of: 7) == .committed(.rw))
        }
    }

    @Test func aDamagedRecordIsRejectedWithAReason() {
        #expect(throws: DecodeError.self) { try EnclaveRecord(decoding: [1, 2, 3]) }
        let record = EnclaveRecord(
            identity: EnclaveIdentity(
                handle: 1, label: "x", owner: PeerCredentials(pid: 1, uid: 0, gid: 0), device: .simulated, base: 1 << 32,
                size: 1 << 24, managed: PageRange(first: 0, count: 4096)), pages: [])
        var bytes = record.encoded()
        bytes.append(0)
        #expect(throws: DecodeError.self) { try EnclaveRecord(decoding: bytes) }
    }

    @Test func aRecordKeepsAHostOnlyClientsOptionsAndAVersionTwoRecordHasNone() throws {
        let identity = EnclaveIdentity(
            handle: 9, label: "sdk", owner: PeerCredentials(pid: 1, uid: 0, gid: 0), device: .kernel, base: 1 << 32, size: 1 << 24,
            managed: PageRange(first: 0, count: 4096), options: [.implicitCommit, .kernelErrors])
        let record = EnclaveRecord(identity: identity, pages: [.init(range: PageRange(first: 3, count: 2), value: .committed(.rw))])
        #expect(try EnclaveRecord(decoding: record.encoded()) == record)
        // A version 2 record (written before the options existed): no options field after the identity.
        var old = record
        old.identity.options = []
        var bytes = old.encoded()
        bytes[8] = 2
        let optionsAt = 8 + 2 + 8 + 2 + 3 + 4 + 4 + 4 + 4 + 2 + 2 + 1 + 8 + 8 + 8 + 8
        bytes.removeSubrange(optionsAt..<optionsAt + 2)
        #expect(try EnclaveRecord(decoding: bytes) == old)
    }
}
