import EDMMSystem
import SGXDevice

/// The one funnel through which SGXKernel reaches the kernel: every ioctl, fstat, stat, open,
/// close, kcmp and CPUID goes through a `Syscalls`, so that each error path can be driven by
/// `FakeSyscalls` on machines without SGX (the pattern of swift-nio's System.swift and
/// swift-system's mocking layer). `LinuxSyscalls` is the real one.
public protocol Syscalls: Sendable {
    func fstat(_ fd: Int32) throws(SystemCallError) -> FileStatus
    func stat(_ path: String) throws(SystemCallError) -> FileStatus
    /// Returns the new descriptor.
    func open(_ path: String, flags: Int32) throws(SystemCallError) -> Int32
    /// The descriptor is released even when this throws (Linux close(2) semantics; never retried).
    func close(_ fd: Int32) throws(SystemCallError)
    /// Whether two descriptors of this process name the same open file (kcmp(2), KCMP_FILE).
    func sameOpenFile(_ a: Int32, _ b: Int32) throws(SystemCallError) -> Bool

    /// The SGX2 ioctls, one call each: 0 or the errno, with `params` holding what the kernel
    /// left in the struct (copied back or untouched). EINTR is returned, not retried.
    func restrictPermissions(_ fd: Int32, _ params: inout RestrictPermissionsParams) -> Int32
    func modifyTypes(_ fd: Int32, _ params: inout ModifyTypesParams) -> Int32
    func removePages(_ fd: Int32, _ params: inout RemovePagesParams) -> Int32

    /// CPUID's SGX feature bits on this CPU.
    func cpuSGXFeatures() -> CPUSGXFeatures
}

/// A failed system call: which one, and its errno.
public struct SystemCallError: Error, Hashable, Sendable, CustomStringConvertible {
    public var function: String
    public var errno: Int32

    public init(_ function: String, errno: Int32) {
        self.function = function
        self.errno = errno
    }

    public var description: String { "\(function): \(ErrnoName.of(errno))" }
}

/// The file-type bits of `st_mode`.
public enum FileKind: Hashable, Sendable, CustomStringConvertible {
    case regularFile, directory, characterDevice, blockDevice, fifo, socket, symbolicLink
    case unknown(mode: UInt32)

    public var description: String {
        switch self {
        case .regularFile: "a regular file"
        case .directory: "a directory"
        case .characterDevice: "a character device"
        case .blockDevice: "a block device"
        case .fifo: "a pipe or FIFO"
        case .socket: "a socket"
        case .symbolicLink: "a symbolic link"
        case .unknown(let mode): "a file of unknown type (mode 0o\(String(mode, radix: 8)))"
        }
    }
}

/// A device number (`st_rdev`) split as `major(3)` / `minor(3)` do.
public struct DeviceNumber: Hashable, Sendable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32

    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// glibc's encoding: major in bits 8-19 and 32-63, minor in bits 0-7 and 12-31.
    public init(rdev: UInt64) {
        major = UInt32(truncatingIfNeeded: ((rdev >> 32) & 0xFFFF_F000) | ((rdev >> 8) & 0x0000_0FFF))
        minor = UInt32(truncatingIfNeeded: ((rdev >> 12) & 0xFFFF_FF00) | (rdev & 0x0000_00FF))
    }

    public var description: String { "\(major):\(minor)" }
}

/// The part of `struct stat` SGXKernel looks at.
public struct FileStatus: Hashable, Sendable {
    public var kind: FileKind
    /// `st_rdev`; meaningful for character and block devices only.
    public var device: DeviceNumber

    public init(kind: FileKind, device: DeviceNumber = DeviceNumber(major: 0, minor: 0)) {
        self.kind = kind
        self.device = device
    }
}
