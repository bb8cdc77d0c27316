import CEDMMShims
import EDMMKubernetes
import EDMMSystem
import Glibc

/// Who is on the other end of a connection, as the kernel reported it when the peer connected
/// (SO_PEERCRED), plus the peer's supplementary groups at that moment (SO_PEERGROUPS, or /proc).
/// Nothing a client sends can change it. With `[kubernetes] enabled`, HELLO adds the pod and
/// container the peer runs in (`scope`), read from its cgroup.
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups (empty if /proc could not be read: then only `gid` counts).
    public var groups: [UInt32]
    /// The peer's Kubernetes pod and container; nil for a host process (and always without
    /// `[kubernetes] enabled`).
    public var scope: ContainerScope?

    public init(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32] = [], scope: ContainerScope? = nil) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.scope = scope
    }

    /// The credentials of the peer of a connected AF_UNIX socket.
    static func of(socket fd: Int32) -> PeerCredentials? {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard edmm_peer_credentials(fd, &pid, &uid, &gid) == 0 else { return nil }
        return PeerCredentials(pid: pid, uid: uid, gid: gid, groups: peerGroups(socket: fd) ?? supplementaryGroups(pid: pid))
    }

    /// The peer's supplementary groups as the kernel captured them when it connected
    /// (SO_PEERGROUPS, Linux >= 4.13); nil where the option is missing. /proc is only the fallback:
    /// a peer that exits (or changes its groups) right after connecting is no longer there.
    static func peerGroups(socket fd: Int32) -> [UInt32]? {
        let soPeerGroups: Int32 = 59  // <asm-generic/socket.h>
        var capacity = 64
        while true {
            var groups = [gid_t](repeating: 0, count: capacity)
            var length = socklen_t(capacity * MemoryLayout<gid_t>.size)
            if getsockopt(fd, SOL_SOCKET, soPeerGroups, &groups, &length) == 0 {
                return Array(groups.prefix(Int(length) / MemoryLayout<gid_t>.size))
            }
            // ERANGE: the kernel wrote the length it needs.
            guard errno == ERANGE, Int(length) / MemoryLayout<gid_t>.size > capacity else { return nil }
            capacity = Int(length) / MemoryLayout<gid_t>.size
        }
    }

    var isRoot: Bool { uid == 0 }

    /// Root, or a member (primary or supplementary) of the admin group, on the host: inside a
    /// pod nearly everything runs as root, so a peer with a scope is never an admin.
    func isAdmin(adminGroup: UInt32?) -> Bool {
        guard scope == nil else { return false }
        if isRoot { return true }
        guard let adminGroup else { return false }
        return gid == adminGroup || groups.contains(adminGroup)
    }

    /// May this peer see an enclave registered by `owner`? A peer in a pod sees its pod's
    /// enclaves, whatever their uids; a host peer sees its uid's host enclaves, an admin all.
    func canView(owner: PeerCredentials, adminGroup: UInt32?) -> Bool {
        if let scope { return owner.scope?.podUID == scope.podUID }
        return isAdmin(adminGroup: adminGroup) || (owner.scope == nil && owner.uid == uid)
    }

    /// May this peer ATTACH (and so use) an enclave registered by `owner`? Within a pod, any of
    /// its containers; on the host, the same uid or root.
    func canUse(owner: PeerCredentials) -> Bool {
        if let scope { return owner.scope?.podUID == scope.podUID }
        return (owner.scope == nil && owner.uid == uid) || isRoot
    }

    /// Who owns an enclave, as an error message says it.
    var ownerDescription: String { scope.map { "\($0)" } ?? "uid \(uid)" }

    public var description: String { "pid \(pid) uid \(uid) gid \(gid)" + (scope.map { " \($0)" } ?? "") }

    /// The `Groups:` line of /proc/<pid>/status.
    static func supplementaryGroups(pid: Int32) -> [UInt32] {
        guard pid > 0, let status = readSmallFile("/proc/\(pid)/status") else { return [] }
        for line in status.split(separator: "\n") where line.hasPrefix("Groups:") {
            return line.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap {
                UInt32($0)
            }
        }
        return []
    }
}
