import Glibc

/// Writes `line` and a newline to standard error in one write(2), unbuffered: the error lines of
/// the three programs, which must appear even when the process exits right after.
public func printError(_ line: String) {
    let text = line + "\n"
    _ = text.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
}
