import Glibc

/// The package's executables, from the build folder the test bundle runs from.
enum Products {
    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) not found: build the package first (swift build)" }
    }

    /// The folder of the test executable (<build>/debug/edmmdPackageTests.xctest sits beside the products).
    static var directory: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        var path = n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        while !path.isEmpty, !path.hasSuffix("/") { path.removeLast() }
        return path
    }

    static func path(_ name: String) throws -> String {
        let path = directory + name
        guard access(path, X_OK) == 0 else { throw Missing(path: path) }
        return path
    }
}

/// A fresh directory under /tmp, removed with everything in it by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/edmm-e2e-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SpawnFailure.system("mkdtemp", errno) }
        path = String(cString: made)
    }

    func remove() { Self.removeTree(path) }

    private static func removeTree(_ path: String) {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard name != ".", name != ".." else { continue }
                let child = path + "/" + name
                var info = stat()
                if lstat(child, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { removeTree(child) } else { unlink(child) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}

enum SpawnFailure: Error, CustomStringConvertible {
    case system(String, Int32)
    case timedOut(String)
    var description: String {
        switch self {
        case .system(let call, let code): "\(call) failed: \(String(cString: strerror(code)))"
        case .timedOut(let what): "timed out: \(what)"
        }
    }
}

/// A whole file as text; nil if it cannot be opened.
func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        guard n > 0 else { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
