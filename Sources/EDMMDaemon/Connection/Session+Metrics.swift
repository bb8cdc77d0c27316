import EDMMProtocol

/// METRICS: the Prometheus exposition, paged through one rendering per sequence.
extension SessionState {
    /// METRICS pages through one rendering (docs/protocol.md): offset 0 takes a new one, later
    /// offsets read that same one, and the offset of its end gets an empty final chunk of it. An
    /// offset past 0 with no rendering taken on this connection is out-of-range. A peer that is
    /// not an admin gets the series of the enclaves ENCLAVES lists for it only.
    func metrics(_ request: MetricsRequest) throws(WireError) -> ResponseBody {
        guard let render = core.metricsText else { throw WireError(.invalidArgument, "this edmmd has no metrics exposition") }
        if request.offset == 0 {
            let viewer: MetricsViewer = peer.isAdmin(adminGroup: core.settings.adminGroupID) ? .everyone : .peer(peer)
            metricsRendering = Array(render(viewer).utf8)
        }
        guard let text = metricsRendering else {
            throw WireError(.outOfRange, "offset \(request.offset) with no METRICS rendering taken on this connection: start at offset 0")
        }
        let offset = Int(request.offset)
        guard offset <= text.count else {
            throw WireError(.outOfRange, "offset \(offset) is past the end of the \(text.count)-byte exposition")
        }
        var end = min(text.count, offset + min(limits.protocolLimits.maxStringBytes, limits.protocolLimits.maxMessageBytes - 64))
        // Cut at a character boundary, never inside a UTF-8 sequence.
        while end < text.count, end > offset, text[end] & 0xC0 == 0x80 { end -= 1 }
        return .metrics(
            MetricsReply(
                totalBytes: UInt32(clamping: text.count), offset: UInt32(clamping: offset),
                text: String(decoding: text[offset..<end], as: UTF8.self)))
    }
}
