import EDMMCore
import Testing

@testable import EDMMProtocol

@Suite struct WireRangeTests {
    @Test func anAlignedRangeInsideELRANGEBecomesPages() throws {
        #expect(try WireRange(offset: 0x2000, length: 0x3000).pageRange(elrangeSize: 1 << 20).get() == PageRange(first: 2, count: 3))
    }

    @Test func anUnalignedOffsetIsNotAligned() {
        #expect(WireRange(offset: 0x2001, length: 0x1000).pageRange(elrangeSize: 1 << 20).failureCode == .notAligned)
    }

    @Test func aZeroOrUnalignedLengthIsNotAligned() {
        #expect(WireRange(offset: 0, length: 0).pageRange(elrangeSize: 1 << 20).failureCode == .notAligned)
        #expect(WireRange(offset: 0, length: 100).pageRange(elrangeSize: 1 << 20).failureCode == .notAligned)
    }

    @Test func aWrappingRangeIsOutOfRange() {
        #expect(WireRange(offset: UInt64.max - 0xFFF, length: 0x2000).pageRange(elrangeSize: .max).failureCode == .outOfRange)
    }

    @Test func aRangeEndingBeyondELRANGEIsOutOfRange() {
        #expect(WireRange(offset: 0xFF000, length: 0x2000).pageRange(elrangeSize: 1 << 20).failureCode == .outOfRange)
        #expect(WireRange(offset: 0xFF000, length: 0x1000).pageRange(elrangeSize: 1 << 20).failureCode == nil)
    }
}

extension Result where Failure == WireError {
    var failureCode: WireErrorCode? {
        if case .failure(let e) = self { return e.code }
        return nil
    }
}
