import CEDMMShims
import EDMMSystem
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
        switch SeqpacketIO.send(fd, bytes, descriptors: descriptors) {
        case .success(let sent) where sent == bytes.count: return
        case .success: throw .sendFailed(errno: EMSGSIZE)
        case .failure(let failure): throw .sendFailed(errno: failure.errno)
        }
    }

    enum Received {
        case message([UInt8], descriptors: [Int32])
        case endOfStream
    }

    /// Blocks for the next message. A message larger than `capacity` or with more descriptors
    /// than the shim keeps is a protocol violation (its descriptors are closed here).
    func receive(capacity: Int) throws(EDMMClientError) -> Received {
        var result: Result<SeqpacketIO.Received, SeqpacketIO.Failure> = .failure(SeqpacketIO.Failure(errno: EIO))
        // Received straight into the array (not zeroed first, not copied after).
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            result = SeqpacketIO.receive(fd, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = (try? result.get().length).map { min($0, capacity) } ?? 0
        }
        let received: SeqpacketIO.Received
        switch result {
        case .failure(let failure): throw .receiveFailed(errno: failure.errno)
        case .success(let message): received = message
        }
        if received.dataTruncated || received.descriptorsTruncated {
            received.closeDescriptors()
            throw .protocolViolation(
                "a message from edmmd did not fit (\(capacity) bytes, \(EDMM_MAX_FDS_PER_MESSAGE) descriptors)")
        }
        if received.isEndOfStream {
            received.closeDescriptors()
            return .endOfStream
        }
        return .message(bytes, descriptors: received.descriptors)
    }

    /// Wakes a blocked `receive` with end of stream and makes further sends fail.
    func shutdown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
}
