import CSystemd
import Glibc

/// The sd-daemon calls edmmd uses, through libsystemd. Every call is a no-op outside systemd
/// (no NOTIFY_SOCKET, no LISTEN_FDS). `sd_notifyf` is C-variadic and not imported into Swift:
/// messages are formatted here and sent with `sd_notify`.
enum SDDaemon {
    /// The service manager's notification socket, when there is one.
    static var notifySocket: String? {
        guard let value = getenv("NOTIFY_SOCKET"), value.pointee != 0 else { return nil }
        return String(cString: value)
    }

    /// Sends `NAME=value` lines; returns sd_notify's result (> 0 sent, 0 no manager, < 0 -errno).
    @discardableResult
    static func notify(_ fields: KeyValuePairs<String, String>) -> Int32 {
        sd_notify(0, message(fields))
    }

    /// Sends `NAME=value` lines with descriptors attached (SCM_RIGHTS), as FDSTORE=1 needs.
    @discardableResult
    static func notify(_ fields: KeyValuePairs<String, String>, descriptors: [Int32]) -> Int32 {
        descriptors.withUnsafeBufferPointer { fds in
            sd_pid_notify_with_fds(0, 0, message(fields), fds.baseAddress, UInt32(fds.count))
        }
    }

    static func message(_ fields: KeyValuePairs<String, String>) -> String {
        // A newline inside a value would start a new assignment (STATUS=...\nREADY=1).
        fields.map { "\($0.key)=\($0.value.replacingNewlines())" }.joined(separator: "\n")
    }

    /// The watchdog timeout systemd set for this process (WATCHDOG_USEC, WATCHDOG_PID), or nil.
    static func watchdogTimeout() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    /// CLOCK_MONOTONIC in microseconds (RELOADING=1 carries MONOTONIC_USEC=).
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    /// The descriptors systemd passed (socket activation and the FD store), with their names;
    /// LISTEN_* is removed from the environment and each descriptor is made close-on-exec.
    /// Empty when none were passed to this process. A negative result of libsystemd (malformed
    /// LISTEN_* variables) is reported as `.failure(errno)`.
    static func listenDescriptors() -> Result<[(fd: Int32, name: String)], ListenError> {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        let count = sd_listen_fds_with_names(1, &names)
        defer {
            if let names, count > 0 {
                for i in 0..<Int(count) { free(names[i]) }
            }
            free(names)
        }
        guard count >= 0 else { return .failure(ListenError(errno: -count)) }
        return .success(
            (0..<Int(count)).map { i in
                (SD_LISTEN_FDS_START + Int32(i), names?[i].map { String(cString: $0) } ?? "unknown")
            })
    }

    struct ListenError: Error, Equatable {
        var errno: Int32
    }

    /// Whether `fd` is a listening AF_UNIX socket of `type`.
    static func isListeningUnixSocket(_ fd: Int32, type: Int32) -> Bool {
        sd_is_socket_unix(fd, type, 1, nil, 0) > 0
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
