import EDMMClient
import EDMMSimHost
import FoundationEssentials
import Glibc

/// What one `bench-host` process measured over its workload (internal to `edmm-sim bench`).
struct BenchHostReport: Codable {
    /// Workload operations issued (allocate, free, trim, restrict, relax, make-TCS).
    var operations: UInt64 = 0
    /// Pages the workload gave up (FREE and TRIM).
    var freedPages: UInt64 = 0
    /// Request messages sent to edmmd (none for per-request).
    var messages: UInt64 = 0
    var sim = SimTotals()
    /// The fewest ioctls the enclave's flushes could have run (docs/benchmarks.md); nil when
    /// edmmd did not report it.
    var ioctlLowerBound: UInt64?
    /// Modelled enclave cycles (`CostModel.default`) of everything counted for the enclave.
    var cycles: UInt64 = 0
    /// Modelled cycles of building the heap before the workload (static: EADD + EEXTEND of its peak).
    var loadCycles: UInt64 = 0
    /// The most EPC pages the enclave had committed at once (EAUGed or EADDed, not yet removed),
    /// sampled after each batch; static: its whole heap.
    var peakCommittedPages: UInt64 = 0
    /// Per operation, from the enclave issuing it to the enclave holding its result.
    var latencyBuckets: [[UInt64]] = []
    /// edmmd only: each answered request's socket round trip (send to reply).
    var roundTripBuckets: [[UInt64]] = []
    /// CLOCK_MONOTONIC nanoseconds at the start and the end of the workload (one clock for every
    /// process on the machine).
    var startNanoseconds: UInt64 = 0
    var endNanoseconds: UInt64 = 0
    /// This process's CPU time (user + system) during the workload.
    var cpuSeconds: Double = 0
    /// Daemon refusals (quota-exceeded under a full EPC ...), by error name.
    var refusals: [String: UInt64] = [:]
    var problems: [String] = []
}

/// One line of a `bench-host` process's standard output.
struct BenchLine: Codable {
    enum Kind: String, Codable {
        /// Set up and registered; waiting for "go".
        case ready
        /// The workload is done (measurements in `report`); waiting for "check".
        case done
        /// The EPCM comparison is done (`matches`, `problems`); waiting for "exit".
        case checked
        case error
    }

    var kind: Kind
    var report: BenchHostReport?
    var matches: Bool?
    var message: String?

    var encoded: String {
        guard let data = try? JSONEncoder().encode(self) else { return #"{"kind":"error","message":"unencodable line"}"# }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ text: String) -> BenchLine? {
        try? JSONDecoder().decode(BenchLine.self, from: Data(text.utf8))
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// This process's user + system CPU time, in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

extension LatencyHistogram {
    var buckets: [[UInt64]] { sparse.map { [UInt64($0.bucket), $0.count] } }

    init(buckets: [[UInt64]]) {
        self.init(sparse: buckets.compactMap { $0.count == 2 ? (Int($0[0]), $0[1]) : nil })
    }
}
