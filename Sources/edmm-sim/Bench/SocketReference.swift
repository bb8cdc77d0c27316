import ArgumentParser
import Dispatch
import EDMMClient
import Glibc

/// One `edmm-sim bench-echo` process and this process's end of a SOCK_SEQPACKET socket pair to
/// it: what two processes pay to exchange messages of edmmd's sizes with nothing else in the
/// way. Used from one thread.
final class EchoPeer {
    private let fd: Int32
    private let process: ChildProcess
    private let request: [UInt8]
    private let replyBytes: Int
    private var buffer = [UInt8](repeating: 0, count: 65536)

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `dispatch`: the peer reads with a DispatchSource on a serial queue, as edmmd's sessions do,
    /// instead of blocking in recv(2).
    init(requestBytes: Int, replyBytes: Int, dispatch: Bool) throws {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw Failure(description: "socketpair: \(String(cString: strerror(errno)))")
        }
        defer { close(pair[1]) }
        do {
            process = try ChildProcess(
                executable: Fleet.ownExecutable(),
                arguments: ["bench-echo", "--reply-bytes", "\(replyBytes)"] + (dispatch ? ["--dispatch"] : []), passing: [pair[1]])
        } catch {
            close(pair[0])
            throw error
        }
        fd = pair[0]
        request = [UInt8](repeating: 0x5A, count: requestBytes)
        self.replyBytes = replyBytes
    }

    deinit {
        close(fd)
        process.reap(blocking: true)
    }

    private func send() throws {
        guard Glibc.send(fd, request, request.count, 0) == request.count else {
            throw Failure(description: "send: \(String(cString: strerror(errno)))")
        }
    }

    private func receive() throws {
        guard recv(fd, &buffer, buffer.count, 0) == replyBytes else {
            throw Failure(description: "recv: \(String(cString: strerror(errno)))")
        }
    }

    /// One message out and its answer back.
    func roundTrip() throws -> Duration {
        let start = ContinuousClock.now
        try send()
        try receive()
        return ContinuousClock.now - start
    }

    /// `count` messages answered, at most `window` in flight.
    func pipelined(_ count: Int, window: Int) throws -> Duration {
        let start = ContinuousClock.now
        let first = min(window, count)
        for _ in 0..<first { try send() }
        for _ in 0..<(count - first) {
            try receive()
            try send()
        }
        for _ in 0..<first { try receive() }
        return ContinuousClock.now - start
    }
}

/// `edmm-sim bench-echo`: the peer of the physical reference. Answers every message on
/// descriptor 3 with `--reply-bytes` bytes until the other end closes: from a blocking recv(2)
/// loop, or with `--dispatch` from a DispatchSource handler that reads until EAGAIN.
struct EchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-echo", abstract: "The echo peer of `edmm-sim bench` (internal).", shouldDisplay: false)

    @Option var replyBytes: Int
    @Flag var dispatch = false

    func run() async throws {
        let reply = [UInt8](repeating: 0xA5, count: replyBytes)
        guard dispatch else {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while recv(3, &buffer, buffer.count, 0) > 0 {
                guard send(3, reply, reply.count, 0) == reply.count else { break }
            }
            return
        }
        _ = fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_NONBLOCK)
        let queue = DispatchQueue(label: "bench-echo")
        let source = DispatchSource.makeReadSource(fileDescriptor: 3, queue: queue)
        // The handler owns the buffer (it runs on `queue` only).
        nonisolated(unsafe) var buffer = [UInt8](repeating: 0, count: 65536)
        source.setEventHandler {
            while true {
                let n = recv(3, &buffer, buffer.count, 0)
                if n > 0, send(3, reply, reply.count, 0) == reply.count { continue }
                if n < 0, errno == EAGAIN { return }
                Glibc.exit(0)
            }
        }
        source.activate()
        // Sleeps for good (the handler exits the process), leaving every thread to Dispatch:
        // blocking this one could starve the pool the handler needs.
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
