import EDMMSystem
import Glibc

/// A process as /proc shows it now: open descriptors and resident memory (edmmd's, in `edmm-sim soak`).
struct ProcessFigures: Equatable {
    var descriptors: Int
    var residentKiB: UInt64

    /// nil if the process is gone (or /proc is not readable).
    static func of(pid: Int32) -> ProcessFigures? {
        guard let descriptors = directoryEntries("/proc/\(pid)/fd")?.count else { return nil }
        guard let status = LineSource(path: "/proc/\(pid)/status") else { return nil }
        var lines = status
        var resident: UInt64?
        while let line = lines.next() {
            guard line.hasPrefix("VmRSS:") else { continue }
            resident = line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { UInt64($0) }
        }
        return resident.map { ProcessFigures(descriptors: descriptors, residentKiB: $0) }
    }
}
