import Glibc
import Logging
import Synchronization

/// The daemon's log level, shared by every copy of its handler so that RELOAD and SIGHUP can change
/// it at run time.
public final class SharedLogLevel: Sendable {
    private let level: Mutex<Logger.Level>
    public init(_ level: Logger.Level) { self.level = Mutex(level) }
    public var value: Logger.Level {
        get { level.withLock { $0 } }
        set { level.withLock { $0 = newValue } }
    }
}

/// One line per event on standard error: `LEVEL label: message key=value ...`. systemd's journal
/// adds the time and unit itself, so none is printed.
public struct StandardErrorLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sharedLevel: SharedLogLevel

    public init(label: String, level: SharedLogLevel) {
        self.label = label
        self.sharedLevel = level
    }

    /// Reads and writes the shared level: a change through any logger applies to all of them.
    public var logLevel: Logger.Level {
        get { sharedLevel.value }
        set { sharedLevel.value = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let fields = all.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        let line = "\(event.level.rawValue.uppercased()) \(label): \(event.message)\(fields)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
    }
}
