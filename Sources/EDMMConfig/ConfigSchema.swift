import TOMLKit

/// One key of the configuration file: where it lives, and how its value is applied.
struct ConfigKey: Sendable {
    var section: String
    var name: String
    var apply: @Sendable (inout DaemonConfig, any TOMLValueConvertible) throws(ConfigValueError) -> Void
}

/// Every key the configuration file may contain. An unknown key is an error; `config/edmmd.toml`
/// documents each of these (a test keeps the two in step).
enum ConfigSchema {
    static let keys: [ConfigKey] = [
        ConfigKey(section: "daemon", name: "socket") { c, v throws(ConfigValueError) in
            let path = try ConfigValue.string(v)
            guard path.hasPrefix("/"), path.utf8.count <= 107 else {
                throw ConfigValueError("must be an absolute path of at most 107 bytes (the AF_UNIX limit)")
            }
            c.daemon.socket = path
        },
        ConfigKey(section: "daemon", name: "socket_mode") { c, v throws(ConfigValueError) in
            c.daemon.socketMode = try ConfigValue.integer(v, in: 0...0o777)
        },
        ConfigKey(section: "daemon", name: "socket_group") { c, v throws(ConfigValueError) in
            c.daemon.socketGroup = try nonEmptyName(v)
        },
        ConfigKey(section: "daemon", name: "admin_group") { c, v throws(ConfigValueError) in
            c.daemon.adminGroup = try nonEmptyName(v)
        },
        ConfigKey(section: "daemon", name: "device") { c, v throws(ConfigValueError) in
            c.daemon.device = try ConfigValue.enumeration(v, DeviceMode.self)
        },
        ConfigKey(section: "daemon", name: "log_level") { c, v throws(ConfigValueError) in
            c.daemon.logLevel = try ConfigValue.enumeration(v, LogLevel.self)
        },
        ConfigKey(section: "simulator", name: "epc_size") { c, v throws(ConfigValueError) in
            let bytes = try ConfigValue.bytes(v, multipleOf: 4096) ?? 0
            guard bytes >= 64 * 4096 else { throw ConfigValueError("must be at least 256KiB (64 pages)") }
            c.simulator.epcBytes = bytes
        },
        ConfigKey(section: "simulator", name: "max_enclaves") { c, v throws(ConfigValueError) in
            c.simulator.maxEnclaves = try ConfigValue.integer(v, in: 1...65_536)
        },
        ConfigKey(section: "simulator", name: "fault_load_ebusy") { c, v throws(ConfigValueError) in
            c.simulator.faults.loadBusy = try ConfigValue.fraction(v)
        },
        ConfigKey(section: "simulator", name: "fault_unmark_reclaimable") { c, v throws(ConfigValueError) in
            c.simulator.faults.reclaimerHoldsPage = try ConfigValue.fraction(v)
        },
        ConfigKey(section: "simulator", name: "fault_eaug_sigbus") { c, v throws(ConfigValueError) in
            c.simulator.faults.eaugFailure = try ConfigValue.fraction(v)
        },
        ConfigKey(section: "simulator", name: "fault_epc_page_conflict") { c, v throws(ConfigValueError) in
            c.simulator.faults.pageConflict = try ConfigValue.fraction(v)
        },
        ConfigKey(section: "simulator", name: "fault_seed") { c, v throws(ConfigValueError) in
            c.simulator.faults.seed = try ConfigValue.integer(v, in: 0...UInt64(Int64.max))
        },
        ConfigKey(section: "batch", name: "enabled") { c, v throws(ConfigValueError) in c.batch.enabled = try ConfigValue.bool(v) },
        ConfigKey(section: "batch", name: "window_us") { c, v throws(ConfigValueError) in
            c.batch.windowMicros = try ConfigValue.integer(v, in: 1...1_000_000)
        },
        ConfigKey(section: "batch", name: "max_pages") { c, v throws(ConfigValueError) in
            c.batch.maxPages = try ConfigValue.integer(v, in: 1...(1 << 30))
        },
        ConfigKey(section: "pool", name: "enabled") { c, v throws(ConfigValueError) in c.pool.enabled = try ConfigValue.bool(v) },
        ConfigKey(section: "pool", name: "threshold_percent") { c, v throws(ConfigValueError) in
            c.pool.thresholdPercent = try ConfigValue.integer(v, in: 0...100)
        },
        ConfigKey(section: "pressure", name: "high_watermark_percent") { c, v throws(ConfigValueError) in
            c.pressure.highWatermarkPercent = try ConfigValue.integer(v, in: 1...100)
        },
        ConfigKey(section: "pressure", name: "low_watermark_percent") { c, v throws(ConfigValueError) in
            c.pressure.lowWatermarkPercent = try ConfigValue.integer(v, in: 0...99)
        },
        ConfigKey(section: "pressure", name: "check_interval_ms") { c, v throws(ConfigValueError) in
            c.pressure.checkIntervalMillis = try ConfigValue.integer(v, in: 1...60_000)
        },
        ConfigKey(section: "growth", name: "enabled") { c, v throws(ConfigValueError) in c.growth.enabled = try ConfigValue.bool(v) },
        ConfigKey(section: "growth", name: "min_chunk_pages") { c, v throws(ConfigValueError) in
            c.growth.minChunkPages = try ConfigValue.integer(v, in: 1...(1 << 20))
        },
        ConfigKey(section: "growth", name: "max_chunk_pages") { c, v throws(ConfigValueError) in
            c.growth.maxChunkPages = try ConfigValue.integer(v, in: 1...(1 << 20))
        },
        ConfigKey(section: "growth", name: "held_percent") { c, v throws(ConfigValueError) in
            c.growth.heldPercent = try ConfigValue.integer(v, in: 0...100)
        },
        ConfigKey(section: "quota", name: "enclave") { c, v throws(ConfigValueError) in
            c.quota.enclaveBytes = try ConfigValue.bytes(v, multipleOf: 4096, allowUnlimited: true)
        },
        ConfigKey(section: "quota", name: "uid") { c, v throws(ConfigValueError) in
            c.quota.uidBytes = try ConfigValue.bytes(v, multipleOf: 4096, allowUnlimited: true)
        },
        ConfigKey(section: "quota", name: "machine") { c, v throws(ConfigValueError) in
            c.quota.machineBytes = try ConfigValue.bytes(v, multipleOf: 4096, allowUnlimited: true)
        },
        ConfigKey(section: "quota", name: "max_preheat") { c, v throws(ConfigValueError) in
            c.quota.maxPreheatBytes = try ConfigValue.bytes(v, multipleOf: 4096) ?? 0
        },
        ConfigKey(section: "limits", name: "max_message_bytes") { c, v throws(ConfigValueError) in
            c.limits.maxMessageBytes = try ConfigValue.integer(v, in: 4_096...65_536)
        },
        ConfigKey(section: "limits", name: "max_operations_per_message") { c, v throws(ConfigValueError) in
            c.limits.maxOperationsPerMessage = try ConfigValue.integer(v, in: 1...4_096)
        },
        ConfigKey(section: "limits", name: "max_in_flight") { c, v throws(ConfigValueError) in
            c.limits.maxInFlightRequests = try ConfigValue.integer(v, in: 1...1_000_000)
        },
        ConfigKey(section: "limits", name: "max_enclaves_per_connection") { c, v throws(ConfigValueError) in
            c.limits.maxEnclavesPerConnection = try ConfigValue.integer(v, in: 1...65_536)
        },
        ConfigKey(section: "limits", name: "max_connections") { c, v throws(ConfigValueError) in
            c.limits.maxConnections = try ConfigValue.integer(v, in: 1...1_000_000)
        },
        ConfigKey(section: "limits", name: "reply_queue") { c, v throws(ConfigValueError) in
            let bytes = try ConfigValue.bytes(v) ?? 0
            guard bytes >= 65_536, bytes <= 1 << 30 else { throw ConfigValueError("must be between 64KiB and 1GiB") }
            c.limits.replyQueueBytes = Int(bytes)
        },
        ConfigKey(section: "limits", name: "hello_timeout_ms") { c, v throws(ConfigValueError) in
            c.limits.helloTimeoutMillis = try ConfigValue.integer(v, in: 1...3_600_000)
        },
        ConfigKey(section: "metrics", name: "listen") { c, v throws(ConfigValueError) in
            let s = try ConfigValue.string(v)
            if s.isEmpty {
                c.metrics.listen = nil
                return
            }
            guard HostPort(s) != nil else {
                throw ConfigValueError("\"\(s)\" is not HOST:PORT (e.g. \"127.0.0.1:9464\"; \"\" disables the endpoint)")
            }
            c.metrics.listen = s
        },
        ConfigKey(section: "metrics", name: "per_enclave") { c, v throws(ConfigValueError) in c.metrics.perEnclave = try ConfigValue.bool(v)
        },
        ConfigKey(section: "metrics", name: "enclave_labels") { c, v throws(ConfigValueError) in
            c.metrics.enclaveLabels = try ConfigValue.enumeration(v, DaemonConfig.EnclaveLabels.self)
        },
        ConfigKey(section: "systemd", name: "watchdog") { c, v throws(ConfigValueError) in c.systemd.watchdog = try ConfigValue.bool(v) },
        ConfigKey(section: "systemd", name: "fd_store") { c, v throws(ConfigValueError) in c.systemd.fdStore = try ConfigValue.bool(v) },
        ConfigKey(section: "kubernetes", name: "enabled") { c, v throws(ConfigValueError) in c.kubernetes.enabled = try ConfigValue.bool(v)
        },
        ConfigKey(section: "kubernetes", name: "default_container_quota") { c, v throws(ConfigValueError) in
            c.kubernetes.defaultContainerBytes = try ConfigValue.bytes(v, multipleOf: 4096, allowUnlimited: true)
        },
    ]

    /// Tables whose keys are not fixed: `[quota.uid_overrides]` maps a uid to its size limit.
    static let uidOverridesPath = ["quota", "uid_overrides"]

    private static func nonEmptyName(_ v: any TOMLValueConvertible) throws(ConfigValueError) -> String? {
        let s = try ConfigValue.string(v)
        guard !s.isEmpty else { return nil }
        guard s.utf8.count <= 32, s.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }) else {
            throw ConfigValueError("\"\(s)\" is not a valid group name")
        }
        return s
    }
}

/// `HOST:PORT` with a numeric port; IPv6 hosts in brackets (`[::1]:9464`).
public struct HostPort: Equatable, Sendable {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port), !host.isEmpty else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host
        self.port = port
    }
}
