import Glibc

/// A process as the simulator tracks attachments: pid plus its start time, so that a pid reused
/// by a new process is not mistaken for the one that attached.
struct ProcessIdentity: Hashable {
    var pid: UInt32
    var startTime: UInt64

    /// Read again on every use (only attach and detach need it): a value cached in a parent
    /// would make a forked child attach and detach in its parent's name.
    static var current: ProcessIdentity {
        let pid = UInt32(getpid())
        return ProcessIdentity(pid: pid, startTime: ProcStat.read(pid: pid)?.startTime ?? 0)
    }

    /// True while the process exists, is the same process (start time) and has not exited
    /// (a zombie has already dropped its files and mappings, as the kernel would).
    var isAlive: Bool {
        guard let stat = ProcStat.read(pid: pid) else { return false }
        return stat.startTime == startTime && stat.state != "Z" && stat.state != "X"
    }
}

/// The two fields of /proc/<pid>/stat the simulator needs.
enum ProcStat {
    static func read(pid: UInt32) -> (state: Character, startTime: UInt64)? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        // "pid (comm) state ppid ..." where comm may contain spaces and parentheses: split after
        // the last ')'. The start time is field 22, the 20th after the state.
        guard let close = buffer[..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(close + 1)..<n].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, let state = fields[0].first,
            let start = UInt64(String(decoding: fields[19], as: UTF8.self))
        else { return nil }
        return (Character(Unicode.Scalar(state)), start)
    }
}
