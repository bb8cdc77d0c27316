import EDMMProtocol

/// Limits a daemon could be configured with, small enough that short inputs reach every limit check.
let tightLimits: ProtocolLimits = {
    var limits = ProtocolLimits()
    limits.maxMessageBytes = 512
    limits.maxOperationsPerMessage = 4
    limits.maxRangesPerList = 4
    limits.maxLabelBytes = 8
    limits.maxStringBytes = 32
    return limits
}()

/// Feeds one input to both decoders under both sets of limits, twice: as it is, and with the
/// message length field rewritten to the input's size, so that mutations which add or remove
/// bytes still get past the framing check. Every oracle traps on a violation.
@_cdecl("LLVMFuzzerTestOneInput")
public func protocolFuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    var messages = [input]
    if let patched = withLengthFieldMatchingSize(input), patched != input { messages.append(patched) }
    for message in messages {
        for limits in [ProtocolLimits.default, tightLimits] {
            checkRequestDecoding(message, limits: limits)
            checkServerMessageDecoding(message, limits: limits)
        }
    }
    return 0
}

/// The input with bytes 8..<12 (the header's total length) set to its real size.
func withLengthFieldMatchingSize(_ bytes: [UInt8]) -> [UInt8]? {
    guard bytes.count >= 12, let size = UInt32(exactly: bytes.count) else { return nil }
    var patched = bytes
    for i in 0..<4 { patched[8 + i] = UInt8(truncatingIfNeeded: size >> (8 * UInt32(i))) }
    return patched
}
