import CEDMMShims
import Glibc

/// One connected SOCK_SEQPACKET socket: whole messages with their descriptors. Sends may come
/// from any thread (each sendmsg is one atomic record); `receive` is called only by the
/// connection's reader thread. The descriptor is closed when the last reference goes away, so
/// the reader thread can never read a recycled descriptor number.
final class SocketTransport: Sendable {
    let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { Glibc.close(fd) }

    static func connect(path: String) throws(EDMMClientError) -> SocketTransport {
        let fd = path.withCString { edmm_seqpacket_connect($0, 0) }
        guard fd >= 0 else { throw .connecting(to: path, errno: errno) }
        return SocketTransport(fd: fd)
    }

    /// Wraps an already connected socket (tests use one end of a socketpair).
    static func adopting(_ fd: Int32) -> SocketTransport { SocketTransport(fd: fd) }

    func send(_ bytes: [UInt8], descriptors: [Int32] = []) throws(EDMMClientError) {
        let sent = bytes.withUnsafeBytes { buffer in
            descriptors.withUnsafeBufferPointer { edmm_send_with_fds(fd, buffer.baseAddress, buffer.count, $0.baseAddress, $0.count) }
        }
        guard sent == bytes.count else { throw .sendFailed(errno: sent < 0 ? errno : EMSGSIZE) }
    }

    enum Received {
        case message([UInt8], descriptors: [Int32])
        case endOfStream
    }

    /// Blocks for the next message. A message larger than `capacity` or with more descriptors
    /// than the shim keeps is a protocol violation (its descriptors are closed here).
    func receive(capacity: Int) throws(EDMMClientError) -> Received {
        var fds = [Int32](repeating: -1, count: Int(EDMM_MAX_FDS_PER_MESSAGE))
        var count = fds.count
        var truncation: Int32 = 0
        var n = 0
        // Received straight into the array (not zeroed first, not copied after).
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            n = edmm_recv_with_fds(fd, buffer.baseAddress, capacity, &fds, &count, &truncation)
            initialized = min(max(0, n), capacity)
        }
        guard n >= 0 else { throw .receiveFailed(errno: errno) }
        let descriptors = Array(fds[0..<count])
        if truncation != 0 {
            descriptors.forEach { _ = Glibc.close($0) }
            throw .protocolViolation("a message from edmmd did not fit (\(capacity) bytes, \(fds.count) descriptors)")
        }
        if n == 0 {
            descriptors.forEach { _ = Glibc.close($0) }
            return .endOfStream
        }
        return .message(bytes, descriptors: descriptors)
    }

    /// Wakes a blocked `receive` with end of stream and makes further sends fail.
    func shutdown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
}
