import CEDMMShims
import Glibc

/// Whole messages with descriptors (SCM_RIGHTS) on a SOCK_SEQPACKET socket: the one place where
/// the daemon, the client library and the test peers call the shim's sendmsg and recvmsg.
public enum SeqpacketIO {
    /// A failed send or receive, with its errno.
    public struct Failure: Error, Equatable, Sendable {
        public var errno: Int32
        public init(errno: Int32) { self.errno = errno }
    }

    /// Sends `bytes` as one message carrying copies of `descriptors` (which stay the caller's).
    /// Returns the bytes sent.
    public static func send(_ socket: Int32, _ bytes: [UInt8], descriptors: [Int32] = []) -> Result<Int, Failure> {
        let sent = bytes.withUnsafeBytes { buffer in
            descriptors.withUnsafeBufferPointer {
                edmm_send_with_fds(socket, buffer.baseAddress, buffer.count, $0.baseAddress, $0.count)
            }
        }
        return sent < 0 ? .failure(Failure(errno: errno)) : .success(sent)
    }

    /// One message as it arrived: its length in the buffer and the descriptors it carried, which
    /// the caller now owns (it closes them when the message is refused).
    public struct Received {
        /// Bytes stored in the buffer; 0 is the end of the stream (SOCK_SEQPACKET cannot tell an
        /// empty message from it).
        public var length: Int
        public var descriptors: [Int32]
        /// The message was longer than the buffer (MSG_TRUNC).
        public var dataTruncated: Bool
        /// It carried more descriptors than asked for (those past the limit were closed).
        public var descriptorsTruncated: Bool

        public var isEndOfStream: Bool { length == 0 }

        /// Closes every descriptor the message carried.
        public func closeDescriptors() {
            for fd in descriptors { Glibc.close(fd) }
        }
    }

    /// Receives one message into `buffer`, keeping at most `maxDescriptors` of its descriptors.
    public static func receive(
        _ socket: Int32, into buffer: UnsafeMutableRawBufferPointer, maxDescriptors: Int = Int(EDMM_MAX_FDS_PER_MESSAGE)
    ) -> Result<Received, Failure> {
        var count = maxDescriptors
        var truncation: Int32 = 0
        var error: Int32 = 0
        // The descriptor slots live on the stack: no heap allocation for a message without descriptors
        // (nearly all of them), nor for the receive that ends a read with EAGAIN.
        let (n, descriptors) = withUnsafeTemporaryAllocation(of: Int32.self, capacity: Swift.max(maxDescriptors, 1)) { fds in
            let n = edmm_recv_with_fds(socket, buffer.baseAddress, buffer.count, fds.baseAddress, &count, &truncation)
            error = errno
            return (n, count > 0 ? Array(fds[0..<Swift.min(count, maxDescriptors)]) : [])
        }
        guard n >= 0 else {
            for fd in descriptors { Glibc.close(fd) }
            return .failure(Failure(errno: error))
        }
        return .success(
            Received(
                length: n, descriptors: descriptors, dataTruncated: truncation & Int32(EDMM_RECV_DATA_TRUNCATED) != 0,
                descriptorsTruncated: truncation & Int32(EDMM_RECV_FDS_TRUNCATED) != 0))
    }
}
