import EDMMSystem
import Synchronization

/// Linux's one sign that the EPC is full: its reclaimer thread at work. ksgxd sleeps until fewer
/// than `SGX_NR_HIGH_PAGES` (64) EPC pages are free and reclaims until there are more
/// (`arch/x86/kernel/cpu/sgx/main.c`: `ksgxd()`, `sgx_should_reclaim()`), so its CPU time growing
/// between two samples means the EPC ran full in between. (Direct reclaim inside the SGX2 ioctls
/// shows only as their latency and as EAGAIN/EBUSY, which the ioctl runner retries.)
final class KsgxdActivity: Sendable {
    /// The thread's schedstat (CPU time in ns) or, without CONFIG_SCHED_INFO, its stat file;
    /// nil: no ksgxd (SGX not initialised, or not Linux's driver).
    let source: Source?
    private let lastCPUTime: Mutex<UInt64?>

    enum Source: Equatable {
        case schedstat(String)
        case stat(String)
    }

    init(procDirectory: String = "/proc") {
        source = Self.find(procDirectory: procDirectory)
        lastCPUTime = Mutex(source.flatMap(Self.cpuTime))
    }

    /// Whether ksgxd ran since the previous sample (the first: since this object was made); nil
    /// when there is no ksgxd to watch.
    func sample() -> Bool? {
        guard let source, let now = Self.cpuTime(source) else { return nil }
        let previous = lastCPUTime.withLock { last in
            defer { last = now }
            return last
        }
        return previous.map { now > $0 }
    }

    /// The kernel thread named ksgxd. A process can call itself "ksgxd" (PR_SET_NAME), but only
    /// kernel threads are children of kthreadd (pid 2), so no client can feign pressure.
    static func find(procDirectory: String) -> Source? {
        for name in directoryEntries(procDirectory) ?? [] where UInt32(name) != nil {
            let directory = "\(procDirectory)/\(name)"
            guard readSmallFile("\(directory)/comm") == "ksgxd\n", let stat = readSmallFile("\(directory)/stat"),
                Self.statFields(stat)?[1] == "2"
            else { continue }
            return readSmallFile("\(directory)/schedstat") != nil ? .schedstat("\(directory)/schedstat") : .stat("\(directory)/stat")
        }
        return nil
    }

    /// CPU time so far: schedstat's first field (ns on the CPU), or stat's utime + stime (ticks).
    static func cpuTime(_ source: Source) -> UInt64? {
        switch source {
        case .schedstat(let path):
            return readSmallFile(path).flatMap { $0.split(separator: " ").first }.flatMap { UInt64($0) }
        case .stat(let path):
            guard let fields = readSmallFile(path).flatMap(statFields), fields.count > 12,
                let user = UInt64(fields[11]), let system = UInt64(fields[12])
            else { return nil }
            return user &+ system
        }
    }

    /// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses:
    /// it ends at the last ')'): state, ppid, ...
    static func statFields(_ stat: String) -> [Substring]? {
        guard let end = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: end)...].split(separator: " ")
    }
}
