import EDMMConfig
import Glibc

/// Command-line settings that override the configuration file (on start and on every reload).
public struct ConfigOverrides: Sendable, Equatable {
    public var socket: String?
    /// `--simulate`: the simulated EPC even where SGX2 exists.
    public var simulate = false
    /// `--no-batch`: every request becomes its own ioctls at once.
    public var noBatch = false
    public var epcBytes: UInt64?
    /// `--metrics HOST:PORT` ("" disables the endpoint); nil keeps the file's value.
    public var metricsListen: String?
    public var logLevel: LogLevel?

    public init() {}

    public func apply(to config: inout DaemonConfig) {
        if let socket { config.daemon.socket = socket }
        if simulate { config.daemon.device = .simulated }
        if noBatch { config.batch.enabled = false }
        if let epcBytes { config.simulator.epcBytes = epcBytes }
        if let metricsListen { config.metrics.listen = metricsListen.isEmpty ? nil : metricsListen }
        if let logLevel { config.daemon.logLevel = logLevel }
    }

    /// Validates flag values by the configuration file's own rules, so a flag and the key it
    /// overrides accept exactly the same values. Errors name the flag.
    public static func validated(
        socket: String? = nil, simulate: Bool = false, noBatch: Bool = false, epcSize: String? = nil, metrics: String? = nil,
        logLevel: String? = nil
    ) throws(ConfigErrors) -> ConfigOverrides {
        var overrides = ConfigOverrides()
        overrides.simulate = simulate
        overrides.noBatch = noBatch
        var errors: [ConfigError] = []
        func check(_ flag: String, _ value: String?, _ section: String, _ key: String) -> DaemonConfig? {
            guard let value else { return nil }
            // Bytes, not Foundation's String.contains(_:), which would link ICU into edmmd (34 MB).
            guard !value.utf8.contains(where: { $0 == UInt8(ascii: "'") || $0 == UInt8(ascii: "\n") }) else {
                errors.append(ConfigError(file: flag, line: nil, message: "must not contain quotes or line breaks"))
                return nil
            }
            do throws(ConfigErrors) {
                return try DaemonConfig.parse(toml: "[\(section)]\n\(key) = '\(value)'\n", fileName: flag)
            } catch {
                errors += error.errors.map { ConfigError(file: flag, line: nil, message: $0.message) }
                return nil
            }
        }
        if let config = check("--socket", socket, "daemon", "socket") { overrides.socket = config.daemon.socket }
        if let config = check("--epc-size", epcSize, "simulator", "epc_size") { overrides.epcBytes = config.simulator.epcBytes }
        if let config = check("--metrics", metrics, "metrics", "listen") { overrides.metricsListen = config.metrics.listen ?? "" }
        if let config = check("--log-level", logLevel, "daemon", "log_level") { overrides.logLevel = config.daemon.logLevel }
        guard errors.isEmpty else { throw ConfigErrors(errors) }
        return overrides
    }
}

/// Where the configuration comes from: a file (or, for a default path that does not exist, the
/// defaults) with the command-line overrides on top. Used at start and on every reload.
public struct ConfigSource: Sendable, Equatable {
    public static let defaultPath = "/etc/edmmd/edmmd.toml"

    public var path: String
    /// Given with --config: a missing file is an error. The default path may be missing.
    public var explicit: Bool
    public var overrides: ConfigOverrides

    public init(path: String = ConfigSource.defaultPath, explicit: Bool = false, overrides: ConfigOverrides = ConfigOverrides()) {
        self.path = path
        self.explicit = explicit
        self.overrides = overrides
    }

    public func load() throws(ConfigErrors) -> DaemonConfig {
        var config = DaemonConfig()
        if explicit || access(path, F_OK) == 0 { config = try DaemonConfig.load(path: path) }
        overrides.apply(to: &config)
        return config
    }

    /// What `load` read, for logs.
    public var description: String {
        explicit || access(path, F_OK) == 0 ? path : "defaults (\(path) does not exist)"
    }
}

/// What a reload changed: keys applied at once and keys that only a restart applies.
struct ConfigChanges: Equatable {
    var applied: [String] = []
    var needRestart: [String] = []

    init(from old: DaemonConfig, to new: DaemonConfig) {
        func note(_ key: String, _ changed: Bool, live: Bool) {
            guard changed else { return }
            if live { applied.append(key) } else { needRestart.append(key) }
        }
        note("daemon.socket", old.daemon.socket != new.daemon.socket, live: false)
        note("daemon.socket_mode", old.daemon.socketMode != new.daemon.socketMode, live: false)
        note("daemon.socket_group", old.daemon.socketGroup != new.daemon.socketGroup, live: false)
        note("daemon.admin_group", old.daemon.adminGroup != new.daemon.adminGroup, live: true)
        note("daemon.device", old.daemon.device != new.daemon.device, live: false)
        note("daemon.log_level", old.daemon.logLevel != new.daemon.logLevel, live: true)
        note("simulator", old.simulator != new.simulator, live: false)
        note("batch", old.batch != new.batch, live: true)
        note("pool", old.pool != new.pool, live: true)
        note("pressure", old.pressure != new.pressure, live: true)
        note("growth", old.growth != new.growth, live: true)
        note("quota", old.quota != new.quota, live: true)
        note("limits (new connections)", old.limits != new.limits, live: true)
        note("metrics.listen", old.metrics.listen != new.metrics.listen, live: false)
        note("metrics.per_enclave", old.metrics.perEnclave != new.metrics.perEnclave, live: true)
        note("metrics.enclave_labels", old.metrics.enclaveLabels != new.metrics.enclaveLabels, live: true)
        note("systemd", old.systemd != new.systemd, live: false)
        // `enabled` applies to connections that say HELLO from then on, the default quota at once.
        note("kubernetes", old.kubernetes != new.kubernetes, live: true)
    }

    var summary: String {
        if applied.isEmpty && needRestart.isEmpty { return "no changes" }
        var parts: [String] = []
        if !applied.isEmpty { parts.append("applied " + applied.joined(separator: ", ")) }
        if !needRestart.isEmpty { parts.append("needs restart: " + needRestart.joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }
}
