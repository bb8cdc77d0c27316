import EDMMSystem
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

/// One line per event: `LEVEL label: message key=value ...` on standard error, values quoted as
/// logfmt quotes them. systemd's journal adds the time and unit itself, so none is printed. When
/// standard error is the journal (`LogDestination.detect()`), each event goes to the journal with
/// its priority and its metadata as fields instead (JournalLogging.swift).
public struct StandardErrorLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sharedLevel: SharedLogLevel
    private let destination: LogDestination

    public init(label: String, level: SharedLogLevel, destination: LogDestination = .standardError) {
        self.label = label
        self.sharedLevel = level
        self.destination = destination
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
        let fields = all.sorted { $0.key < $1.key }.map { (key: $0.key, value: "\($0.value)") }
        let text = "\(label): \(event.message)" + fields.map { " \($0.key)=\(Logfmt.quoted($0.value))" }.joined()
        if destination == .journal,
            Journal.send(
                priority: Journal.priority(event.level), message: text, identifier: label, fields: fields,
                source: (event.file, event.line, event.function))
        {
            return
        }
        // journald reads a `<N>` prefix on its stream as the line's priority.
        let prefix = destination == .journal ? "<\(Journal.priority(event.level))>" : "\(event.level.rawValue.uppercased()) "
        let line = prefix + text + "\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
    }
}

/// logfmt's value quoting: a value with a space, `=`, a quote, a backslash, a control character,
/// or nothing at all is written as a JSON string (go-logfmt quotes the same way); any other value
/// as it is.
public enum Logfmt {
    public static func quoted(_ value: String) -> String {
        let needsQuotes =
            value.isEmpty || value.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.value < 0x20 }
        return needsQuotes ? JSONText.quote(value) : value
    }
}
