import Glibc

/// Group lookups in the system's group database (NSS).
enum GroupDirectory {
    /// The gid of the group called `name`, or nil when there is none.
    static func groupID(named name: String) -> UInt32? {
        var group = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return group.gr_gid
    }
}
