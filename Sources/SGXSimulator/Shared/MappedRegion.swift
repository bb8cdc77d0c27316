import CEDMMShims
import EDMMCore
import Glibc

/// A shared mapping of (part of) a memfd region, unmapped when the last reference goes.
final class MappedRegion: @unchecked Sendable {
    // Immutable after init; the memory it points to is shared and guarded by the region's locks.
    let base: UnsafeMutableRawPointer
    let length: Int

    init(fd: Int32, offset: UInt64, length: UInt64) throws(SimulatorError) {
        guard length > 0, length <= UInt64(Int.max) else {
            throw .corruptHeader("mapping length \(length) is out of range")
        }
        let p = mmap(nil, Int(length), PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(truncatingIfNeeded: offset))
        guard let p, p != MAP_FAILED else { throw .system(call: "mmap", errno: errno) }
        base = p
        self.length = Int(length)
    }

    deinit { munmap(base, length) }

    func pointer<T>(at offset: UInt64, as type: T.Type) -> UnsafeMutablePointer<T> {
        (base + Int(offset)).assumingMemoryBound(to: type)
    }
}

/// An fd this process owns (a private duplicate of whatever it was opened from).
final class SharedDescriptor: @unchecked Sendable {
    let fd: Int32
    init(_ fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    /// Duplicates `fd` (close-on-exec), leaving the caller's descriptor untouched.
    static func duplicate(_ fd: Int32) throws(SimulatorError) -> SharedDescriptor {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else {
            throw errno == EBADF ? .notARegion("descriptor \(fd) is not open") : .system(call: "dup", errno: errno)
        }
        return SharedDescriptor(copy)
    }

    /// A new, sized, sealed memfd.
    static func memfd(name: String, size: UInt64) throws(SimulatorError) -> SharedDescriptor {
        let fd = edmm_memfd_create(name, 1)
        guard fd >= 0 else { throw .system(call: "memfd_create", errno: -fd) }
        let owned = SharedDescriptor(fd)
        guard ftruncate(fd, off_t(truncatingIfNeeded: size)) == 0 else { throw .system(call: "ftruncate", errno: errno) }
        let rc = edmm_seal_size(fd)
        guard rc == 0 else { throw .system(call: "fcntl(F_ADD_SEALS)", errno: -rc) }
        return owned
    }
}

/// Reads and checks the fixed part of a region before anything is mapped: a sealed regular
/// file with the right magic, version and header size, as large as its header says and at
/// least as large as the header.
enum RegionProbe {
    struct Prefix {
        var magic: UInt64
        var version: UInt32
        var headerSize: UInt32
        var regionSize: UInt64
        var fileSize: UInt64
    }

    static func read(fd: Int32, expected: SimulatorError.RegionKind, headerSize: Int) throws(SimulatorError) -> Prefix {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw errno == EBADF ? .notARegion("descriptor \(fd) is not open") : .system(call: "fstat", errno: errno)
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else { throw .notARegion("descriptor \(fd) is \(describe(type))") }
        let fileSize = UInt64(st.st_size)
        var raw = (UInt64(0), UInt64(0), UInt64(0))
        let got = withUnsafeMutableBytes(of: &raw) { pread(fd, $0.baseAddress, 24, 0) }
        guard got == 24 else { throw .notARegion("descriptor \(fd) is a \(fileSize)-byte file, too small for a header") }
        let prefix = Prefix(
            magic: UInt64(littleEndian: raw.0), version: UInt32(truncatingIfNeeded: raw.1),
            headerSize: UInt32(truncatingIfNeeded: raw.1 >> 32), regionSize: raw.2, fileSize: fileSize)
        let found: SimulatorError.RegionKind? =
            switch prefix.magic {
            case EDMM_MACHINE_MAGIC: .machine
            case EDMM_ENCLAVE_MAGIC: .enclave
            default: nil
            }
        guard let found else { throw .badMagic(expected: expected) }
        guard found == expected else { throw .wrongKind(expected: expected, found: found) }
        guard prefix.version == EDMM_SHM_VERSION else {
            throw .unsupportedVersion(found: prefix.version, expected: EDMM_SHM_VERSION)
        }
        guard prefix.regionSize == fileSize else { throw .sizeMismatch(actual: fileSize, header: prefix.regionSize) }
        guard prefix.headerSize == headerSize else {
            throw .corruptHeader("header size \(prefix.headerSize), expected \(headerSize)")
        }
        guard fileSize >= UInt64(headerSize) else {
            throw .corruptHeader("region of \(fileSize) bytes is smaller than its \(headerSize)-byte header")
        }
        let sealed = edmm_size_is_sealed(fd)
        guard sealed >= 0 else { throw .system(call: "fcntl(F_GET_SEALS)", errno: -sealed) }
        guard sealed == 1 else { throw .notSealed }
        return prefix
    }

    private static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFIFO: "a pipe"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFDIR: "a directory"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }
}

@inline(__always) func roundUp(_ value: UInt64, to alignment: UInt64) -> UInt64 {
    (value + alignment - 1) & ~(alignment - 1)
}
