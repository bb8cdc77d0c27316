import Dispatch
import Glibc

/// What drives `top`: a refresh tick, a key, a resize, or a request to stop.
enum TopEvent: Sendable {
    case tick
    case key(UInt8)
    case resize
    case stop
}

/// The Dispatch sources behind `top`'s event stream: a timer, standard input and the signals that
/// must end it cleanly (SIGINT, SIGTERM, SIGHUP) or redraw it (SIGWINCH). All fire on `queue`.
final class TopEvents: @unchecked Sendable {
    // @unchecked: the sources are set up in init and only cancelled afterwards.
    let stream: AsyncStream<TopEvent>
    private let continuation: AsyncStream<TopEvent>.Continuation
    private let queue = DispatchQueue(label: "edmmctl.top")
    private var sources: [any DispatchSourceProtocol] = []

    init(interval: Double, keyboard: Bool) {
        (stream, continuation) = AsyncStream.makeStream(of: TopEvent.self, bufferingPolicy: .bufferingNewest(64))
        let continuation = self.continuation
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now(), repeating: .milliseconds(Int(interval * 1000)))
        timer.setEventHandler { @Sendable in continuation.yield(.tick) }
        sources.append(timer)
        if keyboard {
            let input = DispatchSource.makeReadSource(fileDescriptor: STDIN_FILENO, queue: queue)
            input.setEventHandler { @Sendable in
                var buffer = [UInt8](repeating: 0, count: 64)
                let n = read(STDIN_FILENO, &buffer, buffer.count)
                guard n > 0 else {
                    continuation.yield(.stop)
                    return
                }
                for byte in buffer[0..<n] { continuation.yield(.key(byte)) }
            }
            sources.append(input)
        }
        for (number, event) in [(SIGINT, TopEvent.stop), (SIGTERM, .stop), (SIGHUP, .stop), (SIGWINCH, .resize)] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { @Sendable in continuation.yield(event) }
            sources.append(source)
        }
        for source in sources { source.resume() }
    }

    func cancel() {
        for source in sources { source.cancel() }
        continuation.finish()
    }
}
