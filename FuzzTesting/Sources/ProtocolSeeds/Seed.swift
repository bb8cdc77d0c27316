import EDMMProtocol

/// One corpus file: a name that says what it holds, and the encoded message.
struct Seed {
    var name: String
    var bytes: [UInt8]

    init(_ name: String, requests: [RequestOperation]) {
        self.name = "request-\(name)"
        bytes = MessageCodec.encodeRequests(requests)
    }

    init(_ name: String, responses: [ResponseOperation]) {
        self.name = "response-\(name)"
        bytes = MessageCodec.encodeResponses(responses)
    }

    init(_ name: String, pushes: [PushOperation]) {
        self.name = "push-\(name)"
        bytes = MessageCodec.encodePushes(pushes)
    }
}

let page: UInt64 = 4096

func pages(_ first: UInt64, _ count: UInt64) -> WireRange {
    WireRange(offset: first * page, length: count * page)
}
