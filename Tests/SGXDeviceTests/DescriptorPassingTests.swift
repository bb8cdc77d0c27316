import CEDMMShims
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SCM_RIGHTS through the C shim over a real SOCK_SEQPACKET socketpair.
@Suite struct DescriptorPassingTests {
    struct Received {
        var bytes: [UInt8]
        var fds: [Int32]
        var truncation: Int32
    }

    func send(_ sock: Int32, _ bytes: [UInt8], fds: [Int32]) -> Int {
        bytes.withUnsafeBytes { buffer in
            fds.withUnsafeBufferPointer {
                edmm_send_with_fds(sock, buffer.baseAddress, buffer.count, $0.baseAddress, $0.count)
            }
        }
    }

    func receive(_ sock: Int32, capacity: Int = 64, maxFDs: Int = 16) throws -> Received {
        var buffer = [UInt8](repeating: 0, count: capacity)
        var fds = [Int32](repeating: -1, count: maxFDs)
        var nfds = maxFDs
        var truncation: Int32 = 0
        let n = edmm_recv_with_fds(sock, &buffer, buffer.count, &fds, &nfds, &truncation)
        try #require(n >= 0, "recvmsg: errno \(errno)")
        return Received(bytes: Array(buffer[0..<n]), fds: Array(fds[0..<nfds]), truncation: truncation)
    }

    /// True when every descriptor of the peer of `end` (a nonblocking socket) is closed: a read
    /// then sees end of stream, not EAGAIN.
    func peerFullyClosed(_ end: Int32) -> Bool {
        var byte: UInt8 = 0
        return read(end, &byte, 1) == 0
    }

    @Test func descriptorArrivesWithTheMessageAndWorks() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        let (readEnd, writeEnd) = try makePipe()
        defer { close(readEnd) }

        #expect(send(a, [1, 2, 3], fds: [writeEnd]) == 3)
        close(writeEnd)
        let message = try receive(b)

        #expect(message.bytes == [1, 2, 3])
        #expect(message.truncation == 0)
        let received = try #require(message.fds.first)
        #expect(message.fds.count == 1)
        var byte: UInt8 = 42
        #expect(write(received, &byte, 1) == 1)
        byte = 0
        #expect(read(readEnd, &byte, 1) == 1)
        #expect(byte == 42)
        close(received)
    }

    @Test func receivedDescriptorIsCloseOnExec() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        let fd = try openPath("/dev/null")
        defer { close(fd) }
        _ = fcntl(fd, F_SETFD, 0)

        #expect(send(a, [0], fds: [fd]) == 1)
        let message = try receive(b)
        let received = try #require(message.fds.first)
        defer { close(received) }
        #expect(isCloseOnExec(received))
    }

    @Test func severalDescriptorsArriveInOrder() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        let null = try openPath("/dev/null")
        let file = try openTemporaryFile()
        defer {
            close(null)
            close(file)
        }

        #expect(send(a, [9], fds: [null, file]) == 1)
        let message = try receive(b)
        defer { message.fds.forEach { close($0) } }

        let kinds = message.fds.map { fd -> mode_t in
            var status = stat()
            fstat(fd, &status)
            return status.st_mode & S_IFMT
        }
        #expect(kinds == [S_IFCHR, S_IFREG])
    }

    @Test(arguments: [1, 2, 3, 16])
    func surplusDescriptorsAreClosedAndFlagged(sent: Int) throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        // Passes copies of `passed`, then watches `watcher` for the moment no copy is left. Close-
        // on-exec from the start, so a child spawned by another test cannot hold a copy.
        let (passed, watcher) = try makeSeqpacketPair(nonblocking: true)
        defer { close(watcher) }

        #expect(send(a, [7], fds: Array(repeating: passed, count: sent)) == 1)
        close(passed)
        let message = try receive(b, maxFDs: sent - 1)

        #expect(message.fds.count == sent - 1)
        #expect(message.truncation == Int32(EDMM_RECV_FDS_TRUNCATED))
        message.fds.forEach { close($0) }
        // Only the copies we kept and closed existed.
        #expect(peerFullyClosed(watcher))
    }

    @Test func messageLongerThanTheBufferIsFlaggedAsTruncated() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }

        #expect(send(a, Array(repeating: 0xAB, count: 100), fds: []) == 100)
        let message = try receive(b, capacity: 10)

        #expect(message.bytes.count == 10)
        #expect(message.truncation == Int32(EDMM_RECV_DATA_TRUNCATED))
    }

    @Test func truncatedMessageStillHandsOverItsDescriptorsForTheCallerToClose() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        let fd = try openPath("/dev/null")
        defer { close(fd) }

        #expect(send(a, Array(repeating: 1, count: 100), fds: [fd]) == 100)
        let message = try receive(b, capacity: 10)

        #expect(message.truncation & Int32(EDMM_RECV_DATA_TRUNCATED) != 0)
        #expect(message.fds.count == 1)
        message.fds.forEach { close($0) }
    }

    @Test func sendingMoreThanTheMaximumDescriptorsIsEINVAL() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        let fd = try openPath("/dev/null")
        defer { close(fd) }

        let tooMany = Array(repeating: fd, count: Int(EDMM_MAX_FDS_PER_MESSAGE) + 1)
        #expect(failureErrno(send(a, [1], fds: tooMany)) == EINVAL)
    }

    @Test func sendingToAClosedPeerIsEPIPEWithoutSIGPIPE() throws {
        let (a, b) = try makeSeqpacketPair()
        defer { close(a) }
        close(b)
        // Without MSG_NOSIGNAL this would kill the test process.
        #expect(failureErrno(send(a, [1], fds: [])) == EPIPE)
    }

    @Test func endOfStreamReadsAsZeroBytes() throws {
        let (a, b) = try makeSeqpacketPair()
        defer { close(b) }
        close(a)
        let message = try receive(b)
        #expect(message.bytes.isEmpty)
        #expect(message.fds.isEmpty)
    }
}
