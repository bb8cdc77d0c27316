import CEDMMShims
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The SOCK_SEQPACKET helpers of the C shim on real sockets.
@Suite struct UnixSocketTests {
    /// A fresh directory for socket files, removed with its contents by `cleanUp`.
    func temporaryDirectory() throws -> String {
        var template = Array("/tmp/edmm-sock-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let path = try #require(made.map { String(cString: $0) }, "mkdtemp: errno \(errno)")
        return path
    }

    func cleanUp(_ directory: String, _ socketPath: String) {
        unlink(socketPath)
        rmdir(directory)
    }

    @Test func peerCredentialsOfASocketpairAreOurOwnPidUidAndGid() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0

        #expect(edmm_peer_credentials(a, &pid, &uid, &gid) == 0)
        #expect(pid == getpid())
        #expect(uid == getuid())
        #expect(gid == getgid())
    }

    @Test func peerCredentialsOfANonSocketIsENOTSOCK() throws {
        let fd = try openPath("/dev/null")
        defer { close(fd) }
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        #expect(failureErrno(edmm_peer_credentials(fd, &pid, &uid, &gid)) == ENOTSOCK)
    }

    @Test func listenerAcceptsAConnectionThatCarriesMessagesAndCredentials() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/control.sock"
        defer { cleanUp(directory, path) }
        let listener = edmm_seqpacket_listen(path, 16, 0)
        try #require(listener >= 0, "listen: errno \(errno)")
        defer { close(listener) }

        let client = edmm_seqpacket_connect(path, 0)
        try #require(client >= 0, "connect: errno \(errno)")
        defer { close(client) }
        let server = edmm_accept(listener)
        try #require(server >= 0, "accept: errno \(errno)")
        defer { close(server) }

        #expect(isCloseOnExec(listener))
        #expect(isCloseOnExec(client))
        #expect(isCloseOnExec(server))
        #expect(fcntl(server, F_GETFL) & O_NONBLOCK != 0)

        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        #expect(edmm_peer_credentials(server, &pid, &uid, &gid) == 0)
        #expect(pid == getpid())

        let hello: [UInt8] = [0x45, 0x44, 0x4D, 0x4D]
        #expect(hello.withUnsafeBytes { edmm_send_with_fds(client, $0.baseAddress, $0.count, nil, 0) } == 4)
        var buffer = [UInt8](repeating: 0, count: 16)
        var nfds = 0
        var truncation: Int32 = 0
        let n = edmm_recv_with_fds(server, &buffer, buffer.count, nil, &nfds, &truncation)
        #expect(n == 4)
        #expect(Array(buffer[0..<4]) == hello)
        #expect(nfds == 0)
        #expect(truncation == 0)
    }

    @Test func acceptWithNoPendingConnectionIsEAGAINOnANonblockingListener() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/idle.sock"
        defer { cleanUp(directory, path) }
        let listener = edmm_seqpacket_listen(path, 4, 1)
        try #require(listener >= 0, "listen: errno \(errno)")
        defer { close(listener) }

        #expect(failureErrno(edmm_accept(listener)) == EAGAIN)
    }

    @Test func listeningOnAPathInUseIsEADDRINUSE() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/busy.sock"
        defer { cleanUp(directory, path) }
        let first = edmm_seqpacket_listen(path, 4, 0)
        try #require(first >= 0)
        defer { close(first) }

        #expect(failureErrno(edmm_seqpacket_listen(path, 4, 0)) == EADDRINUSE)
    }

    @Test func connectingToAPathWithoutListenerFails() throws {
        #expect(failureErrno(edmm_seqpacket_connect("/nonexistent/edmmd.sock", 0)) == ENOENT)
    }

    @Test func pathLongerThanSunPathIsENAMETOOLONGForBindAndConnect() throws {
        let tooLong = "/tmp/" + String(repeating: "x", count: 103)  // 108 bytes: no room for the NUL
        let fd = edmm_seqpacket_socket(0)
        try #require(fd >= 0)
        defer { close(fd) }

        #expect(failureErrno(edmm_unix_bind(fd, tooLong)) == ENAMETOOLONG)
        #expect(failureErrno(edmm_unix_connect(fd, tooLong)) == ENAMETOOLONG)
        #expect(failureErrno(edmm_seqpacket_listen(tooLong, 4, 0)) == ENAMETOOLONG)
    }

    @Test func emptyPathIsEINVAL() throws {
        #expect(failureErrno(edmm_seqpacket_connect("", 0)) == EINVAL)
    }

    @Test func longestPathThatFitsIsAccepted() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/" + String(repeating: "s", count: 107 - directory.utf8.count - 1)
        #expect(path.utf8.count == 107)
        defer { cleanUp(directory, path) }
        let listener = edmm_seqpacket_listen(path, 4, 0)
        #expect(listener >= 0, "listen: errno \(errno)")
        if listener >= 0 { close(listener) }
    }

    @Test func bufferSizesTakeEffect() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        var send: Int32 = 0
        var receive: Int32 = 0

        #expect(edmm_set_buffer_sizes(a, 32768, 49152) == 0)
        #expect(edmm_get_buffer_sizes(a, &send, &receive) == 0)
        // The kernel doubles the values for its bookkeeping overhead.
        #expect(send == 65536)
        #expect(receive == 98304)
    }

    @Test func nonblockingSocketpairIsNonblockingAndCloseOnExec() throws {
        let (a, b) = try makeSeqpacketPair(nonblocking: true)
        defer {
            close(a)
            close(b)
        }
        #expect(fcntl(a, F_GETFL) & O_NONBLOCK != 0)
        #expect(isCloseOnExec(b))
        var byte: UInt8 = 0
        #expect(failureErrno(read(a, &byte, 1)) == EAGAIN)
    }
}
