import CEDMMShims
import SGXDevice

#if canImport(Glibc)
    import Glibc
#endif

/// The real system calls. errno is read immediately after each call, before anything else can
/// overwrite it.
public struct LinuxSyscalls: Syscalls {
    public init() {}

    public func fstat(_ fd: Int32) throws(SystemCallError) -> FileStatus {
        var status = Glibc.stat()
        guard Glibc.fstat(fd, &status) == 0 else { throw SystemCallError("fstat", errno: errno) }
        return FileStatus(status)
    }

    public func stat(_ path: String) throws(SystemCallError) -> FileStatus {
        var status = Glibc.stat()
        guard fstatat(AT_FDCWD, path, &status, 0) == 0 else { throw SystemCallError("stat \(path)", errno: errno) }
        return FileStatus(status)
    }

    public func open(_ path: String, flags: Int32) throws(SystemCallError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags)
            if fd >= 0 { return fd }
            let code = errno
            if code != EINTR { throw SystemCallError("open \(path)", errno: code) }
        }
    }

    public func close(_ fd: Int32) throws(SystemCallError) {
        guard Glibc.close(fd) == 0 else { throw SystemCallError("close", errno: errno) }
    }

    public func sameOpenFile(_ a: Int32, _ b: Int32) throws(SystemCallError) -> Bool {
        let rc = edmm_same_open_file(a, b)
        guard rc >= 0 else { throw SystemCallError("kcmp", errno: errno) }
        return rc == 1
    }

    public func restrictPermissions(_ fd: Int32, _ params: inout RestrictPermissionsParams) -> Int32 {
        let rc = edmm_sgx_restrict_permissions(
            fd, params.offset, params.length, params.permissions, &params.result, &params.count)
        return rc == 0 ? 0 : errno
    }

    public func modifyTypes(_ fd: Int32, _ params: inout ModifyTypesParams) -> Int32 {
        let rc = edmm_sgx_modify_types(fd, params.offset, params.length, params.pageType, &params.result, &params.count)
        return rc == 0 ? 0 : errno
    }

    public func removePages(_ fd: Int32, _ params: inout RemovePagesParams) -> Int32 {
        let rc = edmm_sgx_remove_pages(fd, params.offset, params.length, &params.count)
        return rc == 0 ? 0 : errno
    }

    public func cpuSGXFeatures() -> CPUSGXFeatures { .current }
}

extension FileStatus {
    init(_ status: Glibc.stat) {
        let kind: FileKind =
            switch status.st_mode & S_IFMT {
            case S_IFREG: .regularFile
            case S_IFDIR: .directory
            case S_IFCHR: .characterDevice
            case S_IFBLK: .blockDevice
            case S_IFIFO: .fifo
            case S_IFSOCK: .socket
            case S_IFLNK: .symbolicLink
            default: .unknown(mode: UInt32(status.st_mode))
            }
        self.init(kind: kind, device: DeviceNumber(rdev: UInt64(status.st_rdev)))
    }
}
