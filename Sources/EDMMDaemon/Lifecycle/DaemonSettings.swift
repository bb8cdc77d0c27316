import EDMMConfig
import EDMMCore
import EDMMProtocol
import Logging

/// The parts of the configuration that apply while the daemon runs and may change on RELOAD.
/// Derived from a `DaemonConfig` (with command-line overrides applied) and the device's EPC size.
struct DaemonSettings: Sendable {
    var flush: FlushPolicy.Configuration
    /// false: FREE gives pages back at once (`[pool] enabled = false`).
    var poolEnabled: Bool
    var reclaim: PoolReclaimPolicy.Configuration
    var checkInterval: Duration
    var growth: GrowthPolicy
    var quota: QuotaSettings
    var maxPreheatPages: UInt64
    /// nil: only root may use the admin verbs.
    var adminGroupID: UInt32?
    var logLevel: Logger.Level
    /// Limits for connections accepted from now on; each connection keeps the ones it started with.
    var connection: ConnectionLimits
    var kubernetes: KubernetesSettings

    init(_ config: DaemonConfig, epcTotalPages: UInt64) throws(SettingsError) {
        flush = FlushPolicy.Configuration(
            batching: config.batch.enabled, window: .microseconds(Int64(config.batch.windowMicros)),
            maximumPages: config.batch.maxPages)
        poolEnabled = config.pool.enabled
        reclaim = PoolReclaimPolicy.Configuration(
            thresholdPercent: UInt64(config.pool.thresholdPercent),
            highWatermarkPercent: UInt64(config.pressure.highWatermarkPercent),
            lowWatermarkPercent: UInt64(config.pressure.lowWatermarkPercent))
        checkInterval = .milliseconds(Int64(config.pressure.checkIntervalMillis))
        growth = GrowthPolicy(
            enabled: config.growth.enabled, initialChunkPages: config.growth.minChunkPages,
            maximumChunkPages: config.growth.maxChunkPages, heldPercent: config.growth.heldPercent)
        quota = QuotaSettings(
            enclavePages: config.quota.enclaveBytes.map { $0 / Page.size },
            uidPages: config.quota.uidBytes.map { $0 / Page.size },
            uidOverrides: config.quota.uidOverrides.mapValues { $0 / Page.size },
            machinePages: config.quota.machineBytes.map { $0 / Page.size } ?? (epcTotalPages > 0 ? epcTotalPages : nil))
        maxPreheatPages = config.quota.maxPreheatBytes / Page.size
        if let name = config.daemon.adminGroup {
            guard let gid = GroupDirectory.groupID(named: name) else { throw .unknownGroup(key: "[daemon] admin_group", name) }
            adminGroupID = gid
        } else {
            adminGroupID = nil
        }
        logLevel = Logger.Level(config.daemon.logLevel)
        var protocolLimits = ProtocolLimits()
        protocolLimits.maxMessageBytes = config.limits.maxMessageBytes
        protocolLimits.maxOperationsPerMessage = config.limits.maxOperationsPerMessage
        protocolLimits.maxInFlightRequests = config.limits.maxInFlightRequests
        protocolLimits.maxEnclavesPerConnection = config.limits.maxEnclavesPerConnection
        kubernetes = KubernetesSettings(
            enabled: config.kubernetes.enabled, defaultContainerPages: config.kubernetes.defaultContainerBytes.map { $0 / Page.size })
        connection = ConnectionLimits(
            protocolLimits: protocolLimits, maxConnections: config.limits.maxConnections,
            replyQueueBytes: config.limits.replyQueueBytes,
            helloTimeout: .milliseconds(Int64(config.limits.helloTimeoutMillis)))
    }
}

/// Quotas in pages; nil is unlimited.
struct QuotaSettings: Sendable, Equatable {
    var enclavePages: UInt64?
    var uidPages: UInt64?
    var uidOverrides: [UInt32: UInt64]
    var machinePages: UInt64?

    /// The policy that applies to an enclave of `uid`.
    func policy(uid: UInt32) -> QuotaPolicy {
        QuotaPolicy(
            enclaveLimit: enclavePages, uidLimit: uidOverrides[uid] ?? uidPages, machineLimit: machinePages)
    }
}

/// `[kubernetes]`: whether HELLO resolves peers' pods, and the quota of containers without one.
/// Turning it on or off on RELOAD applies to connections that say HELLO from then on.
struct KubernetesSettings: Sendable, Equatable {
    var enabled: Bool
    /// nil: unlimited.
    var defaultContainerPages: UInt64?
}

/// What one connection may do, fixed when it is accepted.
struct ConnectionLimits: Sendable, Equatable {
    var protocolLimits: ProtocolLimits
    var maxConnections: Int
    var replyQueueBytes: Int
    var helloTimeout: Duration
}

/// A configuration that parses but cannot be applied on this host.
enum SettingsError: Error, Equatable, CustomStringConvertible {
    case unknownGroup(key: String, String)

    var description: String {
        switch self {
        case .unknownGroup(let key, let name): "\(key): no group named \"\(name)\" on this host"
        }
    }
}

extension Logger.Level {
    init(_ level: LogLevel) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}
