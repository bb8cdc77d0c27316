import EDMMProtocol
import Testing

@testable import EDMMDaemon

@Suite struct EnclaveCountersTests {
    @Test func everyVerbCodeHasACounterSlot() {
        let largest = Verb.allCases.map { Int($0.rawValue) }.max() ?? 0
        #expect(largest < VerbCounts.slots)
    }

    @Test func requestsAreCountedPerVerbAndInTotal() {
        var counters = EnclaveCounters()
        counters.record(.allocate, ok: true)
        counters.record(.allocate, ok: true)
        counters.record(.free, ok: false)
        #expect(counters.requestsOK[Int(Verb.allocate.rawValue)] == 2)
        #expect(counters.requestsFailed[Int(Verb.free.rawValue)] == 1)
        #expect(counters.requests == 3)
        #expect(counters.requestsOK.values.count == VerbCounts.slots)
        #expect(counters != EnclaveCounters())
    }
}
