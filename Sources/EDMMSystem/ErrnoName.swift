import Glibc

/// Symbolic names for the errno values the SGX ioctls and the socket layer produce.
public enum ErrnoName {
    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", EBADF: "EBADF", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV",
        ENOTDIR: "ENOTDIR", EINVAL: "EINVAL", ENFILE: "ENFILE", EMFILE: "EMFILE", ENOTTY: "ENOTTY", ENOSPC: "ENOSPC",
        EPIPE: "EPIPE", ERANGE: "ERANGE", ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS", EOVERFLOW: "EOVERFLOW",
        ENOTSOCK: "ENOTSOCK", EMSGSIZE: "EMSGSIZE", EPROTOTYPE: "EPROTOTYPE", EPROTO: "EPROTO", ECONNRESET: "ECONNRESET",
        ECONNREFUSED: "ECONNREFUSED", ETIMEDOUT: "ETIMEDOUT", EOPNOTSUPP: "EOPNOTSUPP",
    ]

    /// "EINVAL" for EINVAL; "errno N" for values without a name here.
    public static func of(_ code: Int32) -> String { names[code] ?? "errno \(code)" }

    /// "ENOENT (No such file or directory)": the name and the C library's text, for messages a
    /// person reads.
    public static func described(_ code: Int32) -> String {
        let text = strerror(code).map { String(cString: $0) } ?? "error \(code)"
        return "\(of(code)) (\(text))"
    }

    /// The inverse of `of`, for parsing traces; nil for unknown names.
    public static func code(for name: String) -> Int32? { names.first { $0.value == name }?.key }
}
