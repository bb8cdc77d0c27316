import EDMMCore
import Glibc
import SGXDevice

/// Cases from the SDM and the kernel beyond the selftests: EACCEPTCOPY (C1...C5), ECREATE's
/// minimum size and an instruction fetch without VM_EXEC (P1, P2), and the EPC the kernel charges
/// an enclave besides its pages, SECS and VA pages (E1, E2).
enum FidelityCases {
    static let regPendingRW = SelftestCases.regPendingRW
    static let regRX = SecInfoFlags([.pageType(.reg), .r, .x])

    static let all: [ConformanceCase] = [
        ConformanceCase(
            name: "C1_eacceptcopy_initializes_a_pending_page", summary: "EACCEPTCOPY copies a page into a fresh one with new permissions"
        ) { c in
            let t = try SelftestEnclave()
            try c.requireCleanExit("PUT MAGIC to data_start", t.call(.put(SelftestEnclave.magic, at: t.dataStart)))
            let dest = t.base + t.totalSize
            try c.require("mmap(RWX) of the hole", errnoName(t.enclave.mmap(address: dest, length: 4096, protection: .rwx)), "0")
            c.expect("EACCEPTCOPY(REG|R|X)", t.cpu.eacceptcopy(dest, source: t.dataStart, flags: regRX), .success)
            let info = t.enclave.pageInfo(offset: t.totalSize)
            c.expect("destination", "\(info.state) \(info.permissions)", "reg r-x")
            c.expect("destination contents", t.cpu.read(dest).map(hex), .success(hex(SelftestEnclave.magic)))
            c.expect("execute the destination", t.cpu.execute(dest).failure, nil)
            c.expect("write the destination", t.cpu.write(dest, 1).failure, .pageFault(errorCode: 0x8007, address: dest))
            c.expect(
                "EACCEPTCOPY onto it again", t.cpu.eacceptcopy(dest, source: t.dataStart, flags: regRX),
                .returned(SGXErrorCode.pageAttributesMismatch))
        },
        ConformanceCase(
            name: "C2_eacceptcopy_unreadable_source", summary: "a source with EPCM R=0 is #PF on the source, SGX bit set"
        ) { c in
            let t = try SelftestEnclave()
            var r = RestrictPermissionsParams(offset: t.dataStart - t.base, length: 4096, permissions: 0)
            try c.require("RESTRICT(---) of data_start", errnoName(t.enclave.restrictPermissions(&r)), "0")
            try c.requireCleanExit("EACCEPT(REG|PR)", t.call(.eaccept(t.dataStart, SecInfoFlags([.pageType(.reg), .pr]).rawValue)))
            let dest = t.base + t.totalSize
            try c.require("mmap(RW) of the hole", errnoName(t.enclave.mmap(address: dest, length: 4096, protection: .rw)), "0")
            c.expect(
                "EACCEPTCOPY from the unreadable page", t.cpu.eacceptcopy(dest, source: t.dataStart, flags: regRX),
                .exception(.pageFault(errorCode: 0x8005, address: t.dataStart)))
            c.expect("destination still pending", t.enclave.pageInfo(offset: t.totalSize).state, .regPending)
        },
        ConformanceCase(
            name: "C3_eacceptcopy_read_only_destination", summary: "a destination VMA without write is #PF 0x6 and no EAUG"
        ) { c in
            let t = try SelftestEnclave()
            let dest = t.base + t.totalSize
            try c.require("mmap(PROT_READ) of the hole", errnoName(t.enclave.mmap(address: dest, length: 4096, protection: .read)), "0")
            let eaugs = t.enclave.counters[.eaug]
            c.expect(
                "EACCEPTCOPY", t.cpu.eacceptcopy(dest, source: t.dataStart, flags: regRX),
                .exception(.pageFault(errorCode: 0x6, address: dest)))
            c.expect("EAUGs", t.enclave.counters[.eaug] - eaugs, 0)
            c.expect("destination still a hole", t.enclave.pageInfo(offset: t.totalSize).state, .hole)
        },
        ConformanceCase(
            name: "C4_eacceptcopy_operand_order", summary: "destination (RCX) then source (RDX) resolve, EAUGs included, before any check"
        ) { c in
            let t = try SelftestEnclave()
            let dest = t.base + t.totalSize
            let source = dest + 4096
            let third = dest + 8192
            try c.require("mmap(RW) of three holes", errnoName(t.enclave.mmap(address: dest, length: 3 * 4096, protection: .rw)), "0")
            // Both holes fault in (EAUG) before the source's EPCM check finds it pending.
            c.expect(
                "EACCEPTCOPY between two holes", t.cpu.eacceptcopy(dest, source: source, flags: regRX),
                .exception(.pageFault(errorCode: 0x8005, address: source)))
            c.expect(
                "destination and source", [0, 1].map { t.enclave.pageInfo(offset: t.totalSize + $0 * 4096).state },
                [.regPending, .regPending])
            // A bad SECINFO (W without R) is #GP, but only after the destination resolved.
            c.expect(
                "EACCEPTCOPY(REG|W) to the third hole", t.cpu.eacceptcopy(third, source: t.dataStart, flags: [.pageType(.reg), .w]),
                .exception(.generalProtection))
            c.expect("third hole EAUG'ed", t.enclave.pageInfo(offset: t.totalSize + 8192).state, .regPending)
            c.expect(
                "EACCEPTCOPY(TCS)", t.cpu.eacceptcopy(third, source: t.dataStart, flags: .pageType(.tcs)), .exception(.generalProtection))
            c.expect(
                "EACCEPTCOPY with a source outside ELRANGE", t.cpu.eacceptcopy(third, source: t.base + t.enclSize, flags: regRX),
                .exception(.generalProtection))
        },
        ConformanceCase(
            name: "C5_eacceptcopy_ignores_pending_modified_pr",
            summary: "PENDING, MODIFIED and PR in EACCEPTCOPY's SECINFO are not reserved"
        ) { c in
            let t = try SelftestEnclave()
            let dest = t.base + t.totalSize
            try c.require("mmap(RW) of the hole", errnoName(t.enclave.mmap(address: dest, length: 4096, protection: .rw)), "0")
            let flags = SecInfoFlags([.pageType(.reg), .r, .w, .pending, .modified, .pr])
            c.expect("EACCEPTCOPY(REG|RW|PENDING|MODIFIED|PR)", t.cpu.eacceptcopy(dest, source: t.dataStart, flags: flags), .success)
            let info = t.enclave.pageInfo(offset: t.totalSize)
            c.expect("destination", "\(info.state) \(info.permissions)", "reg rw-")
        },
        ConformanceCase(name: "P1_ecreate_one_page", summary: "ECREATE needs SECS.SIZE >= 8192: one page is #GP (EIO)") { c in
            let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
            var refused = "created"
            do {
                _ = try SimulatedEnclave.create(machine: machine, base: 1 << 30, size: 4096)
            } catch {
                refused = "\(error)"
            }
            c.expect(
                "ECREATE of 4096 bytes", refused, "invalid configuration: ECREATE: ELRANGE size 4096 is under two pages: ECREATE #GP (EIO)")
            c.expect("EPC used", machine.stats.usedPages, 0)
            let two = try SimulatedEnclave.create(machine: machine, base: 1 << 30, size: 8192)
            c.expect("ECREATE of 8192 bytes: SECS and VA page", two.epcUsage, EPCUsage(enclavePages: 0, secsPages: 1, vaPages: 1))
        },
        ConformanceCase(
            name: "P2_fetch_without_vm_exec", summary: "a fetch maps the page (EAUG'ing a hole), then faults 0x15 on NX"
        ) { c in
            let t = try SelftestEnclave()
            let hole = t.base + t.totalSize
            try c.require("mmap(RW) of the hole", errnoName(t.enclave.mmap(address: hole, length: 4096, protection: .rw)), "0")
            // access_error() lets a not-present fetch in an accessible VMA through: the driver EAUGs,
            // and the retried fetch meets the NX bit of the new PTE (P | U | I, no SGX bit).
            c.expect("fetch from the hole", t.cpu.execute(hole).failure, .pageFault(errorCode: 0x15, address: hole))
            c.expect("hole EAUG'ed", t.enclave.pageInfo(offset: t.totalSize).state, .regPending)
            try c.requireCleanExit("EACCEPT(0x20B)", t.call(.eaccept(hole, regPendingRW)))
            try c.requireCleanExit("EMODPE(X)", t.call(.emodpe(hole, SecInfoFlags.x.rawValue)))
            c.expect("fetch with EPCM RWX, VMA RW", t.cpu.execute(hole).failure, .pageFault(errorCode: 0x15, address: hole))
            try c.require("mprotect(RWX)", errnoName(t.enclave.mprotect(address: hole, length: 4096, protection: .rwx)), "0")
            c.expect("fetch with VMA RWX", t.cpu.execute(hole).failure, nil)
            let none = hole + 4096
            try c.require(
                "mmap(PROT_NONE) of the next hole", errnoName(t.enclave.mmap(address: none, length: 4096, protection: .none)), "0")
            c.expect("fetch from PROT_NONE", t.cpu.execute(none).failure, .pageFault(errorCode: 0x14, address: none))
            c.expect("PROT_NONE hole not EAUG'ed", t.enclave.pageInfo(offset: t.totalSize + 4096).state, .hole)
        },
        ConformanceCase(
            name: "E1_va_pages_outlive_removal",
            summary: "a VA page per 512 pages grown, kept by REMOVE_PAGES (sgx_encl_shrink(encl, NULL))"
        ) { c in
            let machine = try SimulatedMachine.create(.init(epcPages: 2048, enclaveCapacity: 4))
            let enclave = try SimulatedEnclave.create(machine: machine, base: 1 << 30, size: 1024 * 4096)
            try c.require("EINIT", errnoName(enclave.initialize()), "0")
            try c.require("mmap(RW)", errnoName(enclave.mmap(address: enclave.base, length: 1024 * 4096, protection: .rw)), "0")
            c.expect("after ECREATE", enclave.epcUsage, EPCUsage(enclavePages: 0, secsPages: 1, vaPages: 1))
            let cpu = try enclave.cpu()
            func accept(_ pages: Range<UInt64>) -> Int {
                pages.filter { cpu.eaccept(enclave.base + $0 * 4096, flags: [.pageType(.reg), .pending, .r, .w]) != .success }.count
            }
            // The SECS counts as the enclave's first page: 511 more fill the first VA page.
            c.expect("failed EACCEPTs of 511 pages", accept(0..<511), 0)
            c.expect("511 pages", enclave.epcUsage, EPCUsage(enclavePages: 511, secsPages: 1, vaPages: 1))
            c.expect("failed EACCEPT of page 511", accept(511..<512), 0)
            c.expect("512 pages", enclave.epcUsage, EPCUsage(enclavePages: 512, secsPages: 1, vaPages: 2))
            var m = ModifyTypesParams(offset: 0, length: 2 * 4096, pageType: UInt64(SGXPageType.trim.rawValue))
            try c.require("MODIFY_TYPES(TRIM) of two pages", errnoName(enclave.modifyTypes(&m)), "0")
            for page: UInt64 in 0..<2 {
                c.expect("EACCEPT(TRIM|MODIFIED)", cpu.eaccept(enclave.base + page * 4096, flags: [.pageType(.trim), .modified]), .success)
            }
            var x = RemovePagesParams(offset: 0, length: 2 * 4096)
            c.expectIoctl("REMOVE_PAGES of two pages", errno: enclave.removePages(&x), expected: 0, count: x.count, 8192)
            c.expect("after REMOVE_PAGES", enclave.epcUsage, EPCUsage(enclavePages: 510, secsPages: 1, vaPages: 2))
            // Growing back across the same multiple of 512 takes yet another VA page.
            c.expect("failed EACCEPTs of the two pages again", accept(0..<2), 0)
            c.expect("512 pages again", enclave.epcUsage, EPCUsage(enclavePages: 512, secsPages: 1, vaPages: 3))
            c.expect("machine used pages", machine.stats.usedPages, 512 + 1 + 3)
            c.expect("invariants", machine.checkInvariants(enclaves: [enclave]).map(\.description), [])
        },
        ConformanceCase(
            name: "E2_secs_written_back_with_last_page", summary: "the SECS leaves the EPC with the enclave's last page and returns first"
        ) { c in
            let machine = try SimulatedMachine.create(.init(epcPages: 16, enclaveCapacity: 4))
            let a = try SelftestEnclave(machine: machine)
            try c.requireCleanExit("PUT MAGIC in A", a.call(.put(SelftestEnclave.magic, at: a.dataStart)))
            c.expect("A before", a.enclave.epcUsage, EPCUsage(enclavePages: 11, secsPages: 1, vaPages: 1))
            // B's image of 12 pages takes the EPC over: the clock writes back every page of A, and
            // with the last one A's SECS; A's VA page stays.
            let b = try SelftestEnclave(machine: machine, heapPages: 2)
            c.expect("A after B's build", a.enclave.epcUsage, EPCUsage(enclavePages: 0, secsPages: 0, vaPages: 1))
            c.expect("B", b.enclave.epcUsage, EPCUsage(enclavePages: 12, secsPages: 1, vaPages: 1))
            let eldu = a.enclave.counters[.eldu]
            let get = a.call(.get(a.dataStart))
            c.expectCleanExit("GET in A", get)
            c.expect("GET value", hex(get.op.value), hex(SelftestEnclave.magic))
            // EENTER needs the TCS, the GET the data page: each reload brings the SECS first.
            c.expect("A's ELDUs (SECS, TCS, data page)", a.enclave.counters[.eldu] - eldu, 3)
            c.expect("A after the GET", a.enclave.epcUsage, EPCUsage(enclavePages: 2, secsPages: 1, vaPages: 1))
            c.expect("machine used pages", machine.stats.usedPages, 16)
            c.expect("invariants", machine.checkInvariants(enclaves: [a.enclave, b.enclave]).map(\.description), [])
        },
    ]
}
