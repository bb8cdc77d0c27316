import EDMMProtocol
import EDMMSystem
import Glibc

/// The descriptors that arrived with one message. An operation that uses one claims it by index
/// and owns it from then on; the rest are closed when the message has been handled, so none ever
/// leaks and none is closed twice.
final class MessageDescriptors {
    private var fds: [Int32]
    private var claimed: [Bool]
    /// More descriptors were sent than the limit: all of them are refused.
    let truncated: Bool

    init(_ fds: [Int32], truncated: Bool) {
        self.fds = fds
        self.truncated = truncated
        claimed = Array(repeating: false, count: fds.count)
    }

    var count: Int { fds.count }

    /// The descriptor at `index`, once, with its ownership; nil if there is none or it was
    /// already claimed.
    func claim(_ index: Int) -> OwnedDescriptor? {
        guard index < fds.count, !claimed[index] else { return nil }
        claimed[index] = true
        return OwnedDescriptor(fds[index])
    }

    func wasClaimed(_ index: Int) -> Bool { index < claimed.count && claimed[index] }

    /// Closes every descriptor no operation claimed.
    func closeUnclaimed() {
        for (index, fd) in fds.enumerated() where !claimed[index] { Glibc.close(fd) }
        fds.removeAll()
    }
}

extension Result where Success == RequestOperation, Failure == RequestOperationFailure {
    var idAndVerb: (UInt64, UInt16) {
        switch self {
        case .success(let operation): (operation.id, operation.request.verb.rawValue)
        case .failure(let failure): (failure.id, failure.verbCode)
        }
    }
}
