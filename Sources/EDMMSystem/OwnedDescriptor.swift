import Glibc

/// A file descriptor this code owns. It is closed exactly once, when the value ends, unless its
/// ownership is handed on with `take()`. The type is non-copyable, so that a descriptor with two
/// owners (a double close) or none (a leak) is a compile error rather than a comment.
public struct OwnedDescriptor: ~Copyable {
    /// The descriptor's number, for calls that only borrow it.
    public let raw: Int32

    /// Takes ownership of `raw`.
    public init(_ raw: Int32) {
        self.raw = raw
    }

    /// Hands ownership on (to an object that keeps the descriptor open and closes it itself): the
    /// number is returned, and this value no longer closes it.
    public consuming func take() -> Int32 {
        let raw = self.raw
        discard self
        return raw
    }

    deinit {
        // A failed close(2) still releases the descriptor on Linux: there is nothing to retry.
        Glibc.close(raw)
    }
}
