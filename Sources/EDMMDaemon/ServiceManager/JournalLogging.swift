import CSystemd
import Glibc
import Logging

/// Where the daemon's log lines go.
public enum LogDestination: Sendable, Equatable {
    case standardError
    /// systemd's journal, through its native protocol: a priority per line and fields to filter on.
    case journal

    /// The journal when standard error is connected to it: systemd sets `JOURNAL_STREAM` to the
    /// device and inode of the stream it gives a service's stdout/stderr (systemd.exec(5)); a
    /// redirected stderr (`edmmd 2>file` under systemd) no longer matches and keeps plain lines.
    public static func detect(journalStream: String? = getenv("JOURNAL_STREAM").map { String(cString: $0) }, fd: Int32 = STDERR_FILENO)
        -> LogDestination
    {
        guard let journalStream else { return .standardError }
        let parts = journalStream.split(separator: ":")
        var info = stat()
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]), fstat(fd, &info) == 0 else {
            return .standardError
        }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode ? .journal : .standardError
    }
}

/// Entries for the journal: MESSAGE (the same text as the stderr line, without the level),
/// PRIORITY (syslog's numbers), SYSLOG_IDENTIFIER, the code location, and each metadata key as an
/// upper-case field: `journalctl -u edmmd ENCLAVE=17`, `journalctl -u edmmd UID=1000`.
enum Journal {
    /// syslog(3) priorities: swift-log has no alert or emergency; trace is debug.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Fields edmmd sets itself; metadata of the same name stays in MESSAGE only.
    private static let reserved: Set<String> = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"]

    /// A journal field name for a metadata key: upper case, `_` for anything but A-Z, 0-9 and
    /// `_`, not starting with `_` or a digit (those are the journal's own), at most 64 bytes.
    static func fieldName(_ key: String) -> String? {
        var name = String(
            String.UnicodeScalarView(
                key.uppercased().unicodeScalars.map { scalar in
                    ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_" ? scalar : "_"
                }))
        while name.hasPrefix("_") { name.removeFirst() }
        if let first = name.unicodeScalars.first, ("0"..."9").contains(first) { name = "F" + name }
        guard !name.isEmpty, !reserved.contains(name) else { return nil }
        return String(name.prefix(64))
    }

    /// Sends one entry; false if the journal did not take it (the caller writes the line instead).
    static func send(
        priority: Int, message: String, identifier: String, fields: [(key: String, value: String)],
        source: (file: String, line: UInt, function: String)
    ) -> Bool {
        var entries = [
            "MESSAGE=\(message)", "PRIORITY=\(priority)", "SYSLOG_IDENTIFIER=\(identifier)", "CODE_FILE=\(source.file)",
            "CODE_LINE=\(source.line)", "CODE_FUNC=\(source.function)",
        ]
        for field in fields {
            if let name = fieldName(field.key) { entries.append("\(name)=\(field.value)") }
        }
        var bytes: [UInt8] = []
        var spans: [(offset: Int, count: Int)] = []
        for entry in entries {
            spans.append((bytes.count, entry.utf8.count))
            bytes += entry.utf8
        }
        return bytes.withUnsafeMutableBytes { buffer in
            let vectors = spans.map { iovec(iov_base: buffer.baseAddress! + $0.offset, iov_len: $0.count) }
            return sd_journal_sendv(vectors, Int32(vectors.count)) >= 0
        }
    }
}
