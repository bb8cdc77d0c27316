#if canImport(Glibc)
import Glibc
#endif

/// Symbolic names for the errno values the SGX ioctls and the socket layer produce.
public enum ErrnoName {
    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", EBADF: "EBADF", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV",
        EINVAL: "EINVAL", ENFILE: "ENFILE", EMFILE: "EMFILE", ENOTTY: "ENOTTY", ENOSPC: "ENOSPC",
        EPIPE: "EPIPE", ERANGE: "ERANGE", ENOSYS: "ENOSYS", EOVERFLOW: "EOVERFLOW", ENOTSOCK: "ENOTSOCK",
        EMSGSIZE: "EMSGSIZE", EPROTO: "EPROTO", ECONNRESET: "ECONNRESET", ECONNREFUSED: "ECONNREFUSED",
        ETIMEDOUT: "ETIMEDOUT", EOPNOTSUPP: "EOPNOTSUPP",
    ]

    /// "EINVAL" for EINVAL; "errno N" for values without a name here.
    public static func of(_ code: Int32) -> String { names[code] ?? "errno \(code)" }

    /// The inverse of `of`, for parsing traces; nil for unknown names.
    public static func code(for name: String) -> Int32? { names.first { $0.value == name }?.key }
}
