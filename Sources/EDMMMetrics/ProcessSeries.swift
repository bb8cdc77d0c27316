import EDMMDaemon
import Glibc

/// edmmd's own process figures, read from /proc/self at scrape time under the names every
/// Prometheus client library uses (`process_*`). Neither swift-metrics 2.13 nor swift-prometheus
/// 2.4 collects them on Linux. The start time does not need /proc/stat (hidden by the unit's
/// ProcSubset=pid): it is the process's start in clock ticks since boot, placed on the wall clock
/// through CLOCK_BOOTTIME.
struct ProcessFigures: Equatable {
    var cpuSeconds: Double
    var residentBytes: UInt64
    var virtualBytes: UInt64
    var openDescriptors: UInt64
    var maxDescriptors: UInt64?
    var startTimeSeconds: Double

    /// `knownStartTime`: the start time an earlier scrape computed. Pass it back: the clocks are
    /// read a moment apart, and a start time that moved between scrapes would look like a restart.
    static func current(knownStartTime: Double?) -> ProcessFigures? {
        guard let stat = readProcFile("/proc/self/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // Fields after "pid (comm)" (comm may hold spaces and parentheses), from field 3 (state).
        let fields = stat[stat.index(after: close)...].split(separator: UInt8(ascii: " ")).map {
            UInt64(String(decoding: $0, as: UTF8.self))
        }
        func field(_ number: Int) -> UInt64? { fields.count > number - 3 ? fields[number - 3] : nil }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23), let rss = field(24) else {
            return nil
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var limit = rlimit()
        return ProcessFigures(
            cpuSeconds: Double(utime + stime) / ticks, residentBytes: rss * UInt64(sysconf(Int32(_SC_PAGESIZE))), virtualBytes: vsize,
            openDescriptors: countDescriptors(),
            maxDescriptors: getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur != rlim_t.max
                ? UInt64(limit.rlim_cur) : nil,
            startTimeSeconds: knownStartTime ?? startTime(ticksSinceBoot: start, ticksPerSecond: ticks))
    }

    private static func startTime(ticksSinceBoot: UInt64, ticksPerSecond: Double) -> Double {
        var boot = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let sinceBoot = Double(boot.tv_sec) + Double(boot.tv_nsec) / 1e9
        return WallClock.seconds - sinceBoot + Double(ticksSinceBoot) / ticksPerSecond
    }

    private static func countDescriptors() -> UInt64 {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count: UInt64 = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != 0x2E { count += 1 }  // not "." or ".."
        }
        // Less the descriptor opendir holds while counting.
        return count > 0 ? count - 1 : 0
    }

    private static func readProcFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buffer, buffer.count)
        return n > 0 ? Array(buffer[..<n]) : nil
    }

    func write(into writer: inout ExpositionWriter) {
        writer.family(MetricCatalog.cpu)
        writer.sample(MetricCatalog.cpu, real: cpuSeconds)
        writer.single(MetricCatalog.resident, residentBytes)
        writer.single(MetricCatalog.virtualMemory, virtualBytes)
        writer.single(MetricCatalog.openFDs, openDescriptors)
        writer.family(MetricCatalog.maxFDs)
        if let maxDescriptors { writer.sample(MetricCatalog.maxFDs, .empty, maxDescriptors) }
        writer.family(MetricCatalog.startTime)
        writer.sample(MetricCatalog.startTime, real: startTimeSeconds)
    }
}
