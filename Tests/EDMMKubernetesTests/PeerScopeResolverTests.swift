import CEDMMShims
import EDMMKubernetes
import Glibc
import Testing

struct PeerScopeResolverTests {
    /// This test process is the peer of a socket pair: its own cgroup, read through the socket.
    @Test func aPeerOnThisHostResolvesToItsOwnCgroupsIdentity() throws {
        var pair: [Int32] = [-1, -1]
        try #require(edmm_seqpacket_pair(&pair, 0) == 0)
        defer {
            close(pair[0])
            close(pair[1])
        }
        let resolution = try PeerScopeResolver.resolve(socket: pair[0], pid: getpid()).get()
        let own = CgroupScopeParser.identity(procCgroup: try #require(readText("/proc/self/cgroup")))
        #expect(resolution.identity == own)
        #expect(resolution.method == (PeerScopeResolver.kernelHasPeerPidfd ? .pidfd : .procfs))
    }

    @Test func aPeerThatExitedIsNotTakenForAnother() throws {
        // A child connects (socketpair before fork) and exits; its pid no longer names it.
        var pair: [Int32] = [-1, -1]
        try #require(edmm_seqpacket_pair(&pair, 0) == 0)
        defer { close(pair[0]) }
        let child = fork()
        if child == 0 { _exit(0) }
        close(pair[1])
        var status: Int32 = 0
        waitpid(child, &status, 0)
        // The pair was made by this process, so SO_PEERCRED names this one; ask about the child's pid.
        let result = PeerScopeResolver.resolve(socket: pair[0], pid: child)
        guard case .failure(let failure) = result else {
            Issue.record("resolved a process that exited: \(result)")
            return
        }
        #expect(failure.message.contains("exited"))
    }

    @Test func noPidIsRefused() {
        #expect(throws: PeerScopeResolver.Failure.self) { try PeerScopeResolver.resolve(socket: -1, pid: 0).get() }
    }

    private func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let n = read(fd, &buffer, buffer.count)
        return n >= 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}
