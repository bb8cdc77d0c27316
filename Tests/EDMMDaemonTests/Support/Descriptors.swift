import Glibc

/// How many of this process's descriptors refer to the same file (device and inode) as `fd`.
/// The daemon runs in the test process, so this counts its copies too; inodes are unique, so the
/// count is not disturbed by tests running in parallel.
func descriptorsOpen(onSameFileAs fd: Int32) -> Int {
    var target = stat()
    guard fstat(fd, &target) == 0 else { return -1 }
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard Int32(name) != nil else { continue }
        var info = stat()
        if stat("/proc/self/fd/\(name)", &info) == 0, info.st_dev == target.st_dev, info.st_ino == target.st_ino { count += 1 }
    }
    return count
}

/// A pipe; returns (read end, write end).
func makePipe() throws -> (Int32, Int32) {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { throw TestClient.Failure.system("pipe", errno) }
    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    return (ends[0], ends[1])
}
