import EDMMCore
import EDMMSystem
import Glibc
import SGXDevice
import Synchronization

/// The derived black-box cases D1...D23 of reference §11.4.
enum DerivedCases {
    static let trim = UInt64(SGXPageType.trim.rawValue)
    static let tcsType = UInt64(SGXPageType.tcs.rawValue)
    static let regPendingRW = SelftestCases.regPendingRW
    static let trimModified = SelftestCases.trimModified

    static let all: [ConformanceCase] = [
        ConformanceCase(name: "D1_concurrent_ioctl_ebusy", summary: "a second ioctl while one runs gets EBUSY") { c in
            let t = try SelftestEnclave()
            let second = Mutex<(Int32, RestrictPermissionsParams)?>(nil)
            let enclave = t.enclave
            let heapOffset = t.heap.offset
            // The first ioctl is between its two pages (encl->lock dropped, IOCTL bit held) when
            // another thread issues its own.
            t.enclave.setPageBoundaryHook { _ in
                OSThread.runAndJoin {
                    var p = RestrictPermissionsParams(offset: heapOffset, length: 4096, permissions: 1)
                    let rc = enclave.restrictPermissions(&p)
                    second.withLock { $0 = (rc, p) }
                }
            }
            var first = RestrictPermissionsParams(offset: t.dataOffset, length: 8192, permissions: 1)
            let rc = t.enclave.restrictPermissions(&first)
            t.enclave.setPageBoundaryHook(nil)
            c.expectIoctl("first RESTRICT (two pages)", errno: rc, expected: 0, count: first.count, 8192, result: first.result, 0)
            guard let (rc2, p2) = second.withLock({ $0 }) else { try c.fail("the concurrent ioctl did not run") }
            c.expectIoctl("concurrent RESTRICT", errno: rc2, expected: EBUSY, count: p2.count, 0, result: p2.result, 0)
            c.expect("heap page untouched by the refused ioctl", t.enclave.pageInfo(offset: heapOffset).state, .reg)
        },
        ConformanceCase(name: "D2_not_initialized", summary: "SGX2 ioctls before EINIT: EINVAL; SGX1 CPU: ENODEV") { c in
            for sgx2 in [true, false] {
                let t = try SelftestEnclave(sgx2: sgx2, initialize: false)
                let expected = sgx2 ? EINVAL : ENODEV
                let cpu = sgx2 ? "SGX2" : "SGX1"
                var m = ModifyTypesParams(offset: t.heap.offset, length: 4096, pageType: trim)
                c.expect("\(cpu) MODIFY_TYPES errno", errnoName(t.enclave.modifyTypes(&m)), errnoName(expected))
                var r = RestrictPermissionsParams(offset: t.heap.offset, length: 4096, permissions: 1)
                c.expect("\(cpu) RESTRICT errno", errnoName(t.enclave.restrictPermissions(&r)), errnoName(expected))
                var x = RemovePagesParams(offset: t.heap.offset, length: 4096)
                c.expect("\(cpu) REMOVE errno", errnoName(t.enclave.removePages(&x)), errnoName(expected))
            }
            let initialized = try SelftestEnclave(sgx2: false)
            var m = ModifyTypesParams(offset: 0, length: 0, pageType: 0)
            c.expect("SGX1, initialized: probe errno", errnoName(initialized.enclave.modifyTypes(&m)), "ENODEV")
        },
        ConformanceCase(name: "D3_bad_offset_or_length", summary: "bad ranges are EINVAL, struct not written back") { c in
            let t = try SelftestEnclave()
            let size = t.enclSize
            let ranges: [(String, UInt64, UInt64)] = [
                ("unaligned offset", 100, 4096), ("zero length", 0, 0), ("unaligned length", 0, 100),
                ("wrapping range", UInt64.max - 4095, 8192), ("beyond ELRANGE", size - 4096, 8192),
            ]
            for (label, offset, length) in ranges {
                var m = ModifyTypesParams(offset: offset, length: length, pageType: trim)
                let before = m
                c.expect("MODIFY_TYPES \(label) errno", errnoName(t.enclave.modifyTypes(&m)), "EINVAL")
                c.expect("MODIFY_TYPES \(label) struct unchanged", m, before)
                var r = RestrictPermissionsParams(offset: offset, length: length, permissions: 1)
                let rb = r
                c.expect("RESTRICT \(label) errno", errnoName(t.enclave.restrictPermissions(&r)), "EINVAL")
                c.expect("RESTRICT \(label) struct unchanged", r, rb)
                var x = RemovePagesParams(offset: offset, length: length)
                let xb = x
                c.expect("REMOVE \(label) errno", errnoName(t.enclave.removePages(&x)), "EINVAL")
                c.expect("REMOVE \(label) struct unchanged", x, xb)
            }
        },
        ConformanceCase(name: "D4_nonzero_count_or_result", summary: "non-zero count/result on input is EINVAL") { c in
            let t = try SelftestEnclave()
            let o = t.heap.offset
            var m1 = ModifyTypesParams(offset: o, length: 4096, pageType: trim, count: 4096)
            c.expect("MODIFY_TYPES count 4096", errnoName(t.enclave.modifyTypes(&m1)), "EINVAL")
            var m2 = ModifyTypesParams(offset: o, length: 4096, pageType: trim, result: 1)
            c.expect("MODIFY_TYPES result 1", errnoName(t.enclave.modifyTypes(&m2)), "EINVAL")
            var r1 = RestrictPermissionsParams(offset: o, length: 4096, permissions: 1, count: 4096)
            c.expect("RESTRICT count 4096", errnoName(t.enclave.restrictPermissions(&r1)), "EINVAL")
            var r2 = RestrictPermissionsParams(offset: o, length: 4096, permissions: 1, result: 1)
            c.expect("RESTRICT result 1", errnoName(t.enclave.restrictPermissions(&r2)), "EINVAL")
            var x = RemovePagesParams(offset: o, length: 4096, count: 4096)
            c.expect("REMOVE count 4096", errnoName(t.enclave.removePages(&x)), "EINVAL")
            c.expect("heap page unchanged", t.enclave.pageInfo(offset: o).state, .reg)
        },
        ConformanceCase(name: "D5_bad_permissions", summary: "RESTRICT with 0x8 or W without R is EINVAL") { c in
            let t = try SelftestEnclave()
            for perms: UInt64 in [0x8, 0x2] {
                var r = RestrictPermissionsParams(offset: t.heap.offset, length: 4096, permissions: perms)
                c.expect("RESTRICT permissions \(hex(perms))", errnoName(t.enclave.restrictPermissions(&r)), "EINVAL")
                c.expect("RESTRICT permissions \(hex(perms)) count", r.count, 0)
            }
        },
        ConformanceCase(name: "D6_bad_page_type", summary: "MODIFY_TYPES 0x100 is EINVAL; REG (2) is EINVAL, count 0") { c in
            let t = try SelftestEnclave()
            var wide = ModifyTypesParams(offset: t.heap.offset, length: 4096, pageType: 0x100)
            let before = wide
            c.expect("page_type 0x100 errno", errnoName(t.enclave.modifyTypes(&wide)), "EINVAL")
            c.expect("page_type 0x100 struct unchanged", wide, before)
            var reg = ModifyTypesParams(offset: t.heap.offset, length: 4096, pageType: UInt64(SGXPageType.reg.rawValue))
            let rc = t.enclave.modifyTypes(&reg)
            c.expectIoctl("page_type REG", errno: rc, expected: EINVAL, count: reg.count, 0, result: reg.result, 0)
        },
        ConformanceCase(name: "D7_restrict_pending_page", summary: "RESTRICT over an EAUG'ed page: EFAULT, result 20") { c in
            let t = try SelftestEnclave()
            let hole = try augmentedHole(c, t)
            var r = RestrictPermissionsParams(offset: t.heap.offset, length: 8192, permissions: 1)
            let rc = t.enclave.restrictPermissions(&r)
            c.expectIoctl("RESTRICT [heap, pending]", errno: rc, expected: EFAULT, count: r.count, 4096, result: r.result, 20)
            c.expect("pending page unchanged", t.enclave.pageInfo(offset: hole).state, .regPending)
        },
        ConformanceCase(name: "D8_modify_pending_page", summary: "MODIFY_TYPES on an EAUG'ed page: EFAULT, result 20") { c in
            let t = try SelftestEnclave()
            let hole = try augmentedHole(c, t)
            for (label, type) in [("TRIM", trim), ("TCS", tcsType)] {
                var m = ModifyTypesParams(offset: hole, length: 4096, pageType: type)
                let rc = t.enclave.modifyTypes(&m)
                c.expectIoctl("MODIFY_TYPES(\(label)) pending", errno: rc, expected: EFAULT, count: m.count, 0, result: m.result, 20)
            }
            c.expect("pending page unchanged", t.enclave.pageInfo(offset: hole).state, .regPending)
        },
        ConformanceCase(name: "D9_trim_unaccepted_tcs", summary: "TRIM of a REG->TCS page not yet accepted: result 20") { c in
            let t = try SelftestEnclave()
            var toTCS = ModifyTypesParams(offset: t.heap.offset, length: 4096, pageType: tcsType)
            try c.require("MODIFY_TYPES(TCS) errno", errnoName(t.enclave.modifyTypes(&toTCS)), "0")
            var m = ModifyTypesParams(offset: t.heap.offset, length: 4096, pageType: trim)
            let rc = t.enclave.modifyTypes(&m)
            c.expectIoctl("MODIFY_TYPES(TRIM)", errno: rc, expected: EFAULT, count: m.count, 0, result: m.result, 20)
            c.expect("page state", t.enclave.pageInfo(offset: t.heap.offset).state, .tcsModified)
        },
        ConformanceCase(name: "D10_text_to_tcs", summary: "REG->TCS of an R-X text page is EPERM") { c in
            let t = try SelftestEnclave()
            var m = ModifyTypesParams(offset: t.segments[1].offset, length: 4096, pageType: tcsType)
            let rc = t.enclave.modifyTypes(&m)
            c.expectIoctl("MODIFY_TYPES(TCS) of text", errno: rc, expected: EPERM, count: m.count, 0, result: m.result, 0)
            c.expect("text page unchanged", t.enclave.pageInfo(offset: t.segments[1].offset).state, .reg)
        },
        ConformanceCase(name: "D11_ioctls_on_trim_page", summary: "RESTRICT/MODIFY on a TRIM page is EINVAL") { c in
            let t = try SelftestEnclave()
            var first = ModifyTypesParams(offset: t.heap.offset, length: 4096, pageType: trim)
            try c.require("MODIFY_TYPES(TRIM) errno", errnoName(t.enclave.modifyTypes(&first)), "0")
            var r = RestrictPermissionsParams(offset: t.heap.offset, length: 4096, permissions: 1)
            let rrc = t.enclave.restrictPermissions(&r)
            c.expectIoctl("RESTRICT on TRIM", errno: rrc, expected: EINVAL, count: r.count, 0, result: r.result, 0)
            for (label, type) in [("TRIM", trim), ("TCS", tcsType)] {
                var m = ModifyTypesParams(offset: t.heap.offset, length: 4096, pageType: type)
                let rc = t.enclave.modifyTypes(&m)
                c.expectIoctl("MODIFY_TYPES(\(label)) on TRIM", errno: rc, expected: EINVAL, count: m.count, 0, result: m.result, 0)
            }
        },
        ConformanceCase(name: "D12_range_runs_into_hole", summary: "a range [REG, hole] fails at the hole, EFAULT, count 4096") { c in
            let t = try SelftestEnclave()
            let heap = t.heap.offset
            var r = RestrictPermissionsParams(offset: heap, length: 8192, permissions: 1)
            let rrc = t.enclave.restrictPermissions(&r)
            c.expectIoctl("RESTRICT [REG, hole]", errno: rrc, expected: EFAULT, count: r.count, 4096, result: r.result, 0)
            let restricted = t.enclave.pageInfo(offset: heap)
            c.expect("first page restricted", "\(restricted.state) \(restricted.permissions)", "regPR r--")
            var m = ModifyTypesParams(offset: heap, length: 8192, pageType: trim)
            let mrc = t.enclave.modifyTypes(&m)
            c.expectIoctl("MODIFY_TYPES(TRIM) [REG, hole]", errno: mrc, expected: EFAULT, count: m.count, 4096, result: m.result, 0)
            c.expect("first page trimmed", t.enclave.pageInfo(offset: heap).state, .trimModified)
            var x = RemovePagesParams(offset: heap, length: 8192)
            let xrc = t.enclave.removePages(&x)
            c.expectIoctl("REMOVE [unaccepted TRIM, hole]", errno: xrc, expected: EPERM, count: x.count, 0)
        },
        ConformanceCase(name: "D13_remove_runs_into_reg", summary: "REMOVE [accepted TRIM, REG]: EPERM, count 4096") { c in
            let t = try SelftestEnclave()
            let page = t.heap.offset - 4096  // last data page, followed by the heap page
            var m = ModifyTypesParams(offset: page, length: 4096, pageType: trim)
            try c.require("MODIFY_TYPES(TRIM) errno", errnoName(t.enclave.modifyTypes(&m)), "0")
            let accept = t.call(.eaccept(t.base + page, trimModified))
            try c.requireCleanExit("EACCEPT(TRIM|MODIFIED)", accept)
            var x = RemovePagesParams(offset: page, length: 8192)
            let rc = t.enclave.removePages(&x)
            c.expectIoctl("REMOVE [TRIM, REG]", errno: rc, expected: EPERM, count: x.count, 4096)
            c.expect("first page removed", t.enclave.pageInfo(offset: page).state, .hole)
            c.expect("second page kept", t.enclave.pageInfo(offset: t.heap.offset).state, .reg)
        },
        ConformanceCase(name: "D14_map_outside_elrange", summary: "mmap/mprotect outside ELRANGE after EINIT is EACCES") { c in
            let t = try SelftestEnclave(initialize: false)
            let outside = t.base + t.enclSize
            // Before EINIT any range may be mapped (the loader's noexec probe relies on it).
            try c.require(
                "mmap past ELRANGE before EINIT", errnoName(t.enclave.mmap(address: outside, length: 4096, protection: .read)),
                "0")
            try c.require("EINIT", errnoName(t.enclave.initialize()), "0")
            c.expect(
                "mmap past ELRANGE", errnoName(t.enclave.mmap(address: outside + 4096, length: 4096, protection: .rw)),
                "EACCES")
            c.expect(
                "mmap straddling the start", errnoName(t.enclave.mmap(address: t.base - 4096, length: 8192, protection: .read)),
                "EACCES")
            c.expect(
                "mprotect of the mapping past ELRANGE",
                errnoName(t.enclave.mprotect(address: outside, length: 4096, protection: .read)), "EACCES")
        },
        ConformanceCase(name: "D15_map_beyond_page_cap", summary: "PROT_WRITE over text or PROT_EXEC over TCS is EACCES") { c in
            let t = try SelftestEnclave()
            let text = t.base + t.segments[1].offset
            c.expect("mmap RW over text", errnoName(t.enclave.mmap(address: text, length: 8192, protection: .rw)), "EACCES")
            c.expect("mprotect RWX over text", errnoName(t.enclave.mprotect(address: text, length: 4096, protection: .rwx)), "EACCES")
            c.expect("mmap RWX over TCS", errnoName(t.enclave.mmap(address: t.tcs1, length: 8192, protection: .rwx)), "EACCES")
            c.expect("mprotect RX over TCS", errnoName(t.enclave.mprotect(address: t.tcs1, length: 4096, protection: .rx)), "EACCES")
        },
        ConformanceCase(name: "D16_map_private", summary: "MAP_PRIVATE is EINVAL") { c in
            let t = try SelftestEnclave()
            c.expect(
                "mmap MAP_PRIVATE",
                errnoName(t.enclave.mmap(address: t.base + t.totalSize, length: 4096, protection: .rw, shared: false)), "EINVAL")
        },
        ConformanceCase(name: "D17_eaccept_accepted_page", summary: "EACCEPT(0x20B) of an accepted page returns 19") { c in
            let t = try SelftestEnclave()
            let page = try acceptedHole(c, t)
            let again = t.call(.eaccept(page, regPendingRW))
            c.expectCleanExit("EACCEPT again", again)
            c.expect("EACCEPT again ret", again.op.ret, SGXErrorCode.pageAttributesMismatch)
            let info = t.enclave.pageInfo(offset: page - t.base)
            c.expect("page unchanged", "\(info.state) \(info.permissions)", "reg rw-")
        },
        ConformanceCase(name: "D18_eaccept_without_pending_or_pr", summary: "EACCEPT(REG|RW) is #GP") { c in
            let t = try SelftestEnclave()
            let page = try acceptedHole(c, t)
            let r = t.call(.eaccept(page, SecInfoFlags([.pageType(.reg), .r, .w]).rawValue))
            c.expectException("EACCEPT(REG|RW)", r, vector: 13, errorCode: 0, address: 0)
        },
        ConformanceCase(name: "D19_eaccept_pr_wrong_permissions", summary: "EACCEPT(REG|PR|RW) of a page restricted to R: 19") { c in
            let t = try SelftestEnclave()
            var r = RestrictPermissionsParams(offset: t.heap.offset, length: 4096, permissions: 1)
            try c.require("RESTRICT(R) errno", errnoName(t.enclave.restrictPermissions(&r)), "0")
            let accept = t.call(.eaccept(t.base + t.heap.offset, SecInfoFlags([.pageType(.reg), .pr, .r, .w]).rawValue))
            c.expectCleanExit("EACCEPT(REG|PR|RW)", accept)
            c.expect("EACCEPT ret", accept.op.ret, SGXErrorCode.pageAttributesMismatch)
            c.expect("page still pending the restriction", t.enclave.pageInfo(offset: t.heap.offset).state, .regPR)
        },
        ConformanceCase(name: "D20_emodpe_execute", summary: "EMODPE(X) of an accepted page in a PROT_EXEC VMA, then execute") { c in
            let t = try SelftestEnclave()
            let page = try acceptedHole(c, t, protection: .rwx)
            c.expect("execute before EMODPE", t.cpu.execute(page).failure, .pageFault(errorCode: 0x8015, address: page))
            let r = t.call(.emodpe(page, SecInfoFlags.x.rawValue))
            c.expectCleanExit("EMODPE(X)", r)
            c.expect("EPCM permissions", t.enclave.pageInfo(offset: page - t.base).permissions, .rwx)
            c.expect("execute after EMODPE", t.cpu.execute(page).failure, nil)
        },
        ConformanceCase(name: "D21_access_removed_page", summary: "a removed page is re-EAUG'ed, zeroed, and faults until EACCEPT") { c in
            let t = try SelftestEnclave()
            let address = t.dataStart
            let offset = address - t.base
            try c.requireCleanExit("PUT MAGIC", t.call(.put(SelftestEnclave.magic, at: address)))
            var m = ModifyTypesParams(offset: offset, length: 4096, pageType: trim)
            try c.require("MODIFY_TYPES(TRIM) errno", errnoName(t.enclave.modifyTypes(&m)), "0")
            try c.requireCleanExit("EACCEPT(TRIM|MODIFIED)", t.call(.eaccept(address, trimModified)))
            var x = RemovePagesParams(offset: offset, length: 4096)
            try c.require("REMOVE errno", errnoName(t.enclave.removePages(&x)), "0")
            let eaugBefore = t.enclave.counters[.eaug]
            c.expectException("GET after removal", t.call(.get(address)), vector: 14, errorCode: 0x8005, address: address)
            c.expect("EAUGs by the access", t.enclave.counters[.eaug] - eaugBefore, 1)
            c.expect("page state", t.enclave.pageInfo(offset: offset).state, .regPending)
            let accept = t.call(.eaccept(address, regPendingRW), tcs: t.tcs2)
            c.expectCleanExit("EACCEPT(0x20B) on TCS #2", accept)
            c.expect("EACCEPT ret", accept.op.ret, 0)
            var run = VDSORun(tcs: t.tcs1)
            var op = EnclaveOp.get(address)
            let rc = t.call(&op, &run, leaf: ENCLULeaf.eresume)
            c.expectCleanExit("ERESUME of the GET", (rc, run, op))
            let get = t.call(.get(address))
            c.expectCleanExit("GET", get)
            c.expect("GET value (a fresh zeroed page, not MAGIC)", hex(get.op.value), "0x0")
        },
        ConformanceCase(name: "D22_untrusted_access_before_einit", summary: "host access to a mapped hole before EINIT is SIGBUS") {
            c in
            let t = try SelftestEnclave(initialize: false)
            let hole = t.base + t.totalSize
            try c.require("mmap(RW) of the hole", errnoName(t.enclave.mmap(address: hole, length: 4096, protection: .rw)), "0")
            c.expect("untrusted read", t.enclave.untrustedAccess(address: hole, write: false), .sigbus)
            c.expect("untrusted write", t.enclave.untrustedAccess(address: hole, write: true), .sigbus)
            c.expect("no page was added", t.enclave.pageInfo(offset: t.totalSize).state, .hole)
        },
        ConformanceCase(name: "D23_sgx1_cpu_no_eaug", summary: "SGX1-only CPU: a write to a mapped hole faults 0x6") { c in
            let t = try SelftestEnclave(sgx2: false)
            let hole = t.base + t.totalSize
            try c.require("mmap(RW) of the hole", errnoName(t.enclave.mmap(address: hole, length: 4096, protection: .rw)), "0")
            c.expectException("PUT MAGIC", t.call(.put(SelftestEnclave.magic, at: hole)), vector: 14, errorCode: 0x6, address: hole)
            c.expectException(
                "EACCEPT(0x20B)", t.call(.eaccept(hole, regPendingRW), tcs: t.tcs2), vector: 14, errorCode: 0x4, address: hole)
        },
    ]

    /// Maps the first hole after the image RW and writes to it: the kernel EAUGs it and the write
    /// faults on the pending page. Returns the hole's offset.
    static func augmentedHole(_ c: Checks, _ t: SelftestEnclave) throws -> UInt64 {
        let hole = t.base + t.totalSize
        try c.require("mmap(RW) of the hole", errnoName(t.enclave.mmap(address: hole, length: 4096, protection: .rw)), "0")
        let r = t.call(.put(SelftestEnclave.magic, at: hole), tcs: t.tcs2)
        try c.require("write to the hole: exception error code", hex(r.run.exceptionErrorCode), "0x8007")
        try c.require("hole state after the write", t.enclave.pageInfo(offset: t.totalSize).state, .regPending)
        return t.totalSize
    }

    /// An EAUG'ed, accepted RW page just after the image. Returns its address.
    static func acceptedHole(_ c: Checks, _ t: SelftestEnclave, protection: PagePermissions = .rw) throws -> UInt64 {
        let page = t.base + t.totalSize
        try c.require("mmap of the hole", errnoName(t.enclave.mmap(address: page, length: 4096, protection: protection)), "0")
        let accept = t.call(.eaccept(page, regPendingRW))
        try c.requireCleanExit("EACCEPT(0x20B)", accept)
        try c.require("EACCEPT ret", accept.op.ret, 0)
        return page
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
