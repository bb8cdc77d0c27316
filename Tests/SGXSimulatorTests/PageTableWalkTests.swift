import CEDMMShims
import EDMMCore
import Glibc
import SGXDevice
import Testing

@testable import SGXSimulator

/// A walk over an enclave's present pages reads the page table where it has entries, never the
/// address range: the work REGISTER's `adopted` pages and an FD-store restore may cost.
@Suite struct PageTableWalkTests {
    static let sixteenTiB: UInt64 = 1 << 44

    /// A 16 TiB enclave with three accepted pages: the first, one in the middle, the last.
    private func hugeEnclave() throws -> (SimulatedEnclave, [UInt64]) {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine, pages: Self.sixteenTiB >> 12, base: Self.sixteenTiB)
        let last = (Self.sixteenTiB >> 12) - 1
        let cpu = try enclave.cpu()
        for page in [0, last / 2, last] {
            #expect(cpu.eaccept(enclave.base + page << 12, flags: SharedStateTests.regPendingRW) == .success)
        }
        return (enclave, [0, last / 2, last])
    }

    private func presentPages(_ enclave: SimulatedEnclave, _ ranges: [PageRange], maxEntries: UInt64 = .max) -> (
        [UInt64], SimulatedEnclave.PageTableWalk
    ) {
        var found: [UInt64] = []
        let walk = enclave.forEachPresentPage(in: ranges, maxEntries: maxEntries) { page, info in
            #expect(info.state == .reg)
            found.append(page)
            return true
        }
        return (found, walk)
    }

    @Test func theWholeELRANGEOfASixteenTiBEnclaveCostsItsThreeLeafBlocks() throws {
        let (enclave, pages) = try hugeEnclave()
        let (found, walk) = presentPages(enclave, [PageRange(first: 0, count: Self.sixteenTiB >> 12)])
        #expect(found == pages)
        #expect(walk == SimulatedEnclave.PageTableWalk(entriesVisited: 3 * 512, stopped: nil))
    }

    @Test func rangesSharingALeafBlockAreEachVisitedOnce() throws {
        let (enclave, pages) = try hugeEnclave()
        let ranges = [PageRange(first: 0, count: 10), PageRange(first: 20, count: 10), PageRange(first: pages[1] - 5, count: 11)]
        let (found, walk) = presentPages(enclave, ranges)
        #expect(found == [0, pages[1]])
        // The last range ends in the next leaf block, which does not exist: those pages cost nothing.
        #expect(walk.entriesVisited == 10 + 10 + 6)
        #expect(presentPages(enclave, [PageRange(first: 1, count: 100)]).0.isEmpty)
    }

    @Test func theBudgetStopsTheWalkBeforeALeafBlockThatWouldPassIt() throws {
        let (enclave, _) = try hugeEnclave()
        let (found, walk) = presentPages(enclave, [PageRange(first: 0, count: Self.sixteenTiB >> 12)], maxEntries: 1000)
        #expect(found == [0])
        #expect(walk == SimulatedEnclave.PageTableWalk(entriesVisited: 512, stopped: .budget(wanted: 1024)))
    }

    @Test func theVisitorCanStopTheWalk() throws {
        let (enclave, _) = try hugeEnclave()
        var seen = 0
        let walk = enclave.forEachPresentPage(in: [PageRange(first: 0, count: Self.sixteenTiB >> 12)], maxEntries: .max) { _, _ in
            seen += 1
            return false
        }
        #expect(seen == 1)
        #expect(walk.stopped == .byVisitor)
    }

    /// The directory and block owners are client-writable: junk there costs no more than the
    /// blocks in use and finds no page that does not exist.
    @Test func junkInTheBlockOwnersAndPoolCountIsHarmless() throws {
        let (enclave, pages) = try hugeEnclave()
        let region = enclave.region
        for b in 0..<3 { region.blockOwners[b] = UInt32.max - UInt32(b) }
        region.header.pointee.pool_used = .max
        let (found, walk) = presentPages(enclave, [PageRange(first: 0, count: Self.sixteenTiB >> 12)])
        // The directory still names the blocks, but no block claims its leaf any more.
        #expect(found.isEmpty || found == pages)
        #expect(walk.entriesVisited <= 3 * 512)
    }
}
