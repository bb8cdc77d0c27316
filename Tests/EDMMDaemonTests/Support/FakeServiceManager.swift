import CEDMMShims
import EDMMClient
import EDMMSystem
import Glibc
import Synchronization

/// What systemd's side of the notification protocol would see (sd_notify(3)): a datagram socket
/// the daemon finds through NOTIFY_SOCKET, the messages it sent, and an FD store that keeps the
/// descriptors sent with FDSTORE=1 under their FDNAME (one per file, as systemd keeps them) and
/// drops them on FDSTOREREMOVE=1. A thread of its own receives.
final class FakeServiceManager: Sendable {
    let path: String
    private let socket: Int32
    private let books = Mutex(Books())

    struct Books {
        var messages: [String] = []
        var store: [(name: String, fd: Int32)] = []
    }

    init(directory: String) throws {
        path = directory + "/notify.sock"
        socket = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw TestClient.Failure.system("socket", errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw TestClient.Failure.system("bind \(path)", errno) }
        guard OSThread.startDetached({ [self] in receive() }) else { throw TestClient.Failure.system("pthread_create", EAGAIN) }
    }

    /// Stops receiving and closes everything still stored.
    func stop() {
        _ = shutdown(socket, Int32(SHUT_RDWR))
        // A datagram socket does not wake a blocked recvmsg on shutdown: send it an end marker.
        send("\u{0}")
        books.withLock { b in
            for entry in b.store { close(entry.fd) }
            b.store = []
        }
        unlink(path)
    }

    deinit {
        close(socket)
    }

    var messages: [String] { books.withLock { $0.messages } }

    /// The names in the store, sorted.
    var storedNames: [String] { books.withLock { $0.store.map(\.name).sorted() } }

    /// Copies of the stored descriptors (as systemd passes them to the next start), in store order.
    func storedCopies() -> [(name: String, fd: Int32)] {
        books.withLock { $0.store.map { ($0.name, fcntl($0.fd, F_DUPFD_CLOEXEC, 3)) } }
    }

    /// Waits until a message satisfying `condition` arrived; returns it.
    func waitFor(timeout: Duration = .seconds(20), _ condition: (String) -> Bool) -> String? {
        var found: String?
        _ = eventually(timeout: timeout) {
            found = messages.first(where: condition)
            return found != nil
        }
        return found
    }

    /// `waitFor` for async tests.
    func waitForAsync(timeout: Duration = .seconds(20), _ condition: (String) -> Bool) async -> String? {
        var found: String?
        _ = await waitUntil(timeout: timeout) {
            found = messages.first(where: condition)
            return found != nil
        }
        return found
    }

    private func send(_ text: String) {
        let client = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer { close(client) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(client, text, text.utf8.count, 0, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let message: SeqpacketIO.Received
            switch buffer.withUnsafeMutableBytes({ SeqpacketIO.receive(socket, into: $0) }) {
            case .failure(let failure) where failure.errno == EINTR: continue
            case .failure: return
            case .success(let received): message = received
            }
            guard message.length > 0, buffer[0] != 0 else { return message.closeDescriptors() }
            let text = String(decoding: buffer[0..<message.length], as: UTF8.self)
            let received = message.descriptors
            books.withLock { b in
                b.messages.append(text)
                let fields = Self.fields(text)
                if fields["FDSTORE"] == "1", let name = fields["FDNAME"] {
                    for fd in received {
                        if b.store.contains(where: { sameFile($0.fd, fd) }) { close(fd) } else { b.store.append((name, fd)) }
                    }
                } else {
                    received.forEach { close($0) }
                    if fields["FDSTOREREMOVE"] == "1", let name = fields["FDNAME"] {
                        for entry in b.store where entry.name == name { close(entry.fd) }
                        b.store.removeAll { $0.name == name }
                    }
                }
            }
        }
    }

    static func fields(_ message: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in message.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return fields
    }
}

/// Whether two descriptors refer to the same open file (device and inode).
func sameFile(_ a: Int32, _ b: Int32) -> Bool {
    var x = stat()
    var y = stat()
    return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino
}
