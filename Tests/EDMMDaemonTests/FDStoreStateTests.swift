import EDMMCore
import EDMMKubernetes
import EDMMProtocol
import Glibc
import Testing

@testable import EDMMDaemon

/// What the FD store keeps besides descriptors: the state (records, counters, last handle, clean
/// flag) and its two alternating memfds; and how passed descriptors are sorted by name.
@Suite struct FDStoreStateTests {
    private func state(handles: [EnclaveHandle], clean: Bool) -> PersistedState {
        var counters = EnclaveCounters()
        counters.requestsOK[Int(Verb.allocate.rawValue)] = 7
        counters.ioctlCalls.modifyTypes = 3
        counters.largestFlush = 2
        let enclaves = handles.map { handle in
            PersistedState.Enclave(
                record: EnclaveRecord(
                    identity: EnclaveIdentity(
                        handle: handle, label: "e\(handle)", owner: PeerCredentials(pid: 10, uid: 1000, gid: 1000, groups: [27]),
                        device: .simulated, base: 1 << 32, size: 1 << 24, managed: PageRange(first: 16, count: 4080)),
                    pages: [.init(range: PageRange(first: 16, count: 8), value: .committed(.rw))]),
                counters: counters)
        }
        return PersistedState(lastHandle: handles.max() ?? 0, cleanShutdown: clean, enclaves: enclaves)
    }

    @Test func theStateRoundTripsWithRecordsCountersAndTheCleanFlag() throws {
        var original = state(handles: [3, 5], clean: true)
        original.scopes = [
            ContainerScope(podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f"): ScopeRegistration(
                namespace: "shop", pod: "web-0", container: "", quotaPages: 16_384),
            ContainerScope(podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f", containerID: String(repeating: "a", count: 64)):
                ScopeRegistration(namespace: "shop", pod: "web-0", container: "app", quotaPages: nil),
        ]
        original.enclaves[0].record.identity.owner.scope = ContainerScope(podUID: "8f2c1a4e-3b5d-4c6e-9f70-1a2b3c4d5e6f")
        let decoded = try PersistedState(decoding: original.encoded())
        #expect(decoded == original)
        #expect(decoded.enclaves[1].counters.requestsOK[Int(Verb.allocate.rawValue)] == 7)
    }

    @Test func aTruncatedOrPaddedStateIsRejected() {
        let bytes = state(handles: [1], clean: false).encoded()
        #expect(throws: DecodeError.self) { try PersistedState(decoding: Array(bytes.dropLast())) }
        #expect(throws: DecodeError.self) { try PersistedState(decoding: bytes + [0]) }
    }

    @Test func theNewestGenerationWinsAndATornWriteFallsBackToThePreviousOne() throws {
        let slots = try StateSlots.create().get()
        #expect(slots.readNewest() == nil)
        #expect(throws: Never.self) { try slots.write([1, 2, 3]).get() }
        #expect(throws: Never.self) { try slots.write([4, 5]).get() }
        #expect(slots.readNewest() == [4, 5])
        // A daemon killed in the middle of its next write leaves a slot whose payload does not
        // match its header: the other slot still holds the state before.
        let other = StateSlots(fcntl(slots.descriptors[0], F_DUPFD_CLOEXEC, 3), fcntl(slots.descriptors[1], F_DUPFD_CLOEXEC, 3))
        #expect(other.readNewest() == [4, 5])
        #expect(throws: Never.self) { try other.write([6, 7, 8, 9]).get() }
        #expect(slots.readNewest() == [6, 7, 8, 9])
        let torn: [UInt8] = [0xFF]
        let written = torn.withUnsafeBytes { pwrite(other.descriptors[0], $0.baseAddress, 1, off_t(StateSlots.headerSize + 2)) }
        #expect(written == 1)
        #expect(slots.readNewest() == [4, 5])
    }

    @Test func passedDescriptorsAreSortedByName() throws {
        let listening = anonymousListener()
        try #require(listening >= 0)
        let (readEnd, writeEnd) = try makePipe()
        defer { close(writeEnd) }
        var inherited = InheritedDescriptors()
        inherited.take(listening, name: "control")
        inherited.take(readEnd, name: "enclave-4")
        #expect(inherited.control == listening)
        #expect(inherited.stored == ["enclave-4": readEnd])
        #expect(inherited.problems.isEmpty)
        close(listening)
        close(readEnd)
    }

    @Test func aControlDescriptorThatIsNoListeningSeqpacketSocketIsRefusedAndClosed() throws {
        let (readEnd, writeEnd) = try makePipe()
        defer { close(writeEnd) }
        var inherited = InheritedDescriptors()
        inherited.take(readEnd, name: "control")
        #expect(inherited.control == nil)
        #expect(inherited.problems.count == 1)
        #expect(fcntl(readEnd, F_GETFD) == -1)
    }
}

/// A listening SOCK_SEQPACKET socket bound to nothing (autobind), like the one of edmmd.socket.
private func anonymousListener() -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue | SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sa_family_t>.size)) }
    }
    listen(fd, 4)
    return fd
}

/// Reads the newest state out of stored copies of `state.0` and `state.1` (tests only).
enum StoredStateReader {
    static func state(_ first: Int32, _ second: Int32) -> PersistedState? {
        let slots = StateSlots(fcntl(first, F_DUPFD_CLOEXEC, 3), fcntl(second, F_DUPFD_CLOEXEC, 3))
        return slots.readNewest().flatMap { try? PersistedState(decoding: $0) }
    }

    /// Tracked pages over every enclave of the newest state.
    static func trackedPages(_ first: Int32, _ second: Int32) -> UInt64? {
        state(first, second).map { state in
            state.enclaves.reduce(0) { total, enclave in total + enclave.record.pages.reduce(0) { $0 + $1.range.count } }
        }
    }

    /// Pool pages over every enclave of the newest state.
    static func pooledPages(_ first: Int32, _ second: Int32) -> UInt64? {
        state(first, second).map { state in
            state.enclaves.reduce(0) { total, enclave in
                total
                    + enclave.record.pages.reduce(0) { sum, entry in
                        if case .pooled = entry.value { sum + entry.range.count } else { sum }
                    }
            }
        }
    }
}
