import EDMMCore
import Glibc

/// Seconds since the Unix epoch, as Prometheus timestamps are written.
public enum WallClock {
    public static var seconds: Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

/// The last attempt to apply a configuration: the start-up load, then each RELOAD or SIGHUP.
public struct ReloadRecord: Sendable, Equatable {
    public var successful: Bool
    /// When the configuration in force was applied (start-up or the last successful reload).
    public var lastSuccessSeconds: Double
}

/// The FD store as edmmd keeps it (docs/systemd.md).
public struct FDStoreFigures: Sendable, Equatable {
    /// Descriptors edmmd keeps there now: two state slots, the simulated EPC, one per enclave.
    public var descriptors: Int
    /// When the enclaves' state was last written; nil before the first write.
    public var lastWriteSeconds: Double?
    public var writeFailures: UInt64
}

/// The quotas in force, in pages; nil is unlimited.
public struct QuotaLimits: Sendable, Equatable {
    public var enclavePages: UInt64?
    public var uidPages: UInt64?
    public var machinePages: UInt64?
    private var uidOverrides: [UInt32: UInt64]

    init(_ settings: QuotaSettings) {
        enclavePages = settings.enclavePages
        uidPages = settings.uidPages
        machinePages = settings.machinePages
        uidOverrides = settings.uidOverrides
    }

    /// The limit of `uid`'s enclaves together: its override, else `[quota] uid`.
    public func uidPages(for uid: UInt32) -> UInt64? {
        guard let override = uidOverrides[uid] else { return uidPages }
        // An override of "unlimited" is kept as UInt64.max bytes, in pages.
        return override >= UInt64.max / Page.size ? nil : override
    }
}
