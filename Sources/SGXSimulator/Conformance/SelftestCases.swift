import EDMMCore
import Glibc
import SGXDevice

/// The kernel's `tools/testing/selftests/sgx` cases (reference §11.2): the ten SGX2 cases and
/// the SGX1 baseline cases they build on, under their kernel names.
enum SelftestCases {
    static let magic = SelftestEnclave.magic
    static let magic2 = SelftestEnclave.magic2
    static let trimModified = SecInfoFlags([.pageType(.trim), .modified]).rawValue  // 0x410
    static let regPendingRW = SecInfoFlags([.pageType(.reg), .pending, .r, .w]).rawValue  // 0x20B
    static let tcsModified = SecInfoFlags([.pageType(.tcs), .modified]).rawValue  // 0x110

    static let all: [ConformanceCase] = [
        ConformanceCase(name: "unclobbered_vdso", summary: "PUT then GET of MAGIC through the enclave buffer") { c in
            try putGetBuffer(c, SelftestEnclave())
        },
        ConformanceCase(
            name: "unclobbered_vdso_oversubscribed", summary: "PUT/GET with a heap as large as the EPC (reclaim)"
        ) { c in
            let t = try SelftestEnclave(epcPages: 1024, heapPages: 1024)
            c.expect("EWB during the build (EPC oversubscribed)", t.machine.stats.ewb > 0, true)
            try putGetBuffer(c, t)
        },
        ConformanceCase(name: "clobbered_vdso", summary: "PUT/GET through the vDSO directly") { c in
            try putGetBuffer(c, SelftestEnclave())
        },
        ConformanceCase(
            name: "clobbered_vdso_and_user_function", summary: "PUT/GET with a user handler that clears user_data"
        ) { c in
            let t = try SelftestEnclave()
            for (label, kind) in [("PUT_TO_BUFFER", EnclaveOp.Kind.putToBuffer), ("GET_FROM_BUFFER", .getFromBuffer)] {
                var op = EnclaveOp(kind)
                op.value = kind == .putToBuffer ? magic : 0
                var run = VDSORun(tcs: t.tcs1)
                run.userData = 0xdead_beef
                let rc = t.call(&op, &run) { run in
                    run.userData = 0
                    return 0
                }
                c.expectCleanExit(label, (rc, run, op))
                c.expect("\(label): user_data", hex(run.userData), "0x0")
                if kind == .getFromBuffer { c.expect("GET value", hex(op.value), hex(magic)) }
            }
        },
        ConformanceCase(name: "tcs_entry", summary: "NOP through TCS #1, then TCS #2") { c in
            let t = try SelftestEnclave()
            c.expectCleanExit("NOP on TCS #1", t.call(EnclaveOp(.nop), tcs: t.tcs1))
            c.expectCleanExit("NOP on TCS #2", t.call(EnclaveOp(.nop), tcs: t.tcs2))
        },
        ConformanceCase(name: "pte_permissions", summary: "a read-only PTE over RW EPCM gives #PF 0x7") { c in
            let t = try SelftestEnclave()
            try c.requireCleanExit("PUT MAGIC", t.call(.put(magic, at: t.dataStart)))
            let get = t.call(.get(t.dataStart))
            try c.requireCleanExit("GET", get)
            c.expect("GET value", hex(get.op.value), hex(magic))
            try c.require("mprotect(PROT_READ)", errnoName(t.enclave.mprotect(address: t.dataStart, length: 4096, protection: .read)), "0")
            var op = EnclaveOp.put(magic2, at: t.dataStart)
            var run = VDSORun(tcs: t.tcs1)
            let rc = t.call(&op, &run)
            c.expectException("PUT MAGIC2", (rc, run, op), vector: 14, errorCode: 0x7, address: t.dataStart)
            try c.require(
                "mprotect(PROT_READ|PROT_WRITE)", errnoName(t.enclave.mprotect(address: t.dataStart, length: 4096, protection: .rw)), "0")
            run.clearException()
            let resumed = t.call(&op, &run, leaf: ENCLULeaf.eresume)
            c.expectCleanExit("ERESUME", (resumed, run, op))
            let again = t.call(.get(t.dataStart))
            c.expectCleanExit("GET", again)
            c.expect("GET value", hex(again.op.value), hex(magic2))
        },
        ConformanceCase(
            name: "unclobbered_vdso_oversubscribed_remove",
            summary: "trim, accept and remove a heap as large as the EPC; again with every fault injected"
        ) { c in
            let t = try SelftestEnclave(epcPages: 1024, heapPages: 1024)
            try c.requireSGX2(t)
            try putGetBuffer(c, t)
            var modify = ModifyTypesParams(offset: t.heap.offset, length: t.heap.size, pageType: UInt64(SGXPageType.trim.rawValue))
            let rc = t.enclave.modifyTypes(&modify)
            c.expectIoctl("MODIFY_TYPES(TRIM) heap", errno: rc, expected: 0, count: modify.count, t.heap.size, result: modify.result, 0)
            var failures = 0
            var first: String?
            for page in stride(from: t.heap.offset, to: t.heap.offset + t.heap.size, by: Int(Page.size)) {
                let r = t.call(.eaccept(t.base + page, trimModified))
                if !(r.rc == 0 && r.run.function == ENCLULeaf.eexit && r.run.hasNoException && r.op.ret == 0) {
                    failures += 1
                    if first == nil { first = "page 0x\(String(page, radix: 16)): ret \(r.op.ret), vector \(r.run.exceptionVector)" }
                }
            }
            c.expect("heap pages whose EACCEPT(TRIM|MODIFIED) failed", first ?? "none", "none")
            c.expect("failed EACCEPTs", failures, 0)
            var remove = RemovePagesParams(offset: t.heap.offset, length: t.heap.size)
            let rrc = t.enclave.removePages(&remove)
            c.expectIoctl("REMOVE_PAGES heap", errno: rrc, expected: 0, count: remove.count, t.heap.size)
            c.expect("EWB while trimming (EPC oversubscribed)", t.machine.stats.ewb > 0, true)
            try FaultInjectionCases.oversubscribedRemoveUnderFaults(c)
        },
        ConformanceCase(name: "tcs_permissions", summary: "RESTRICT_PERMISSIONS on a TCS page is EINVAL") { c in
            let t = try SelftestEnclave()
            var probe = RestrictPermissionsParams(offset: 0, length: 0, permissions: 0)
            try c.require("probe errno", errnoName(t.enclave.restrictPermissions(&probe)), "EINVAL")
            var p = RestrictPermissionsParams(offset: 0, length: 4096, permissions: 1)
            let rc = t.enclave.restrictPermissions(&p)
            c.expectIoctl("RESTRICT(R) on TCS", errno: rc, expected: EINVAL, count: p.count, 0, result: p.result, 0)
        },
        ConformanceCase(name: "epcm_permissions", summary: "restrict to R, accept, fault 0x8007, EMODPE back to RW") { c in
            let t = try SelftestEnclave()
            try c.requireSGX2(t)
            try c.requireCleanExit("PUT MAGIC", t.call(.put(magic, at: t.dataStart)))
            let get = t.call(.get(t.dataStart))
            try c.requireCleanExit("GET", get)
            c.expect("GET value", hex(get.op.value), hex(magic))
            var p = RestrictPermissionsParams(offset: t.dataOffset + 4096, length: 4096, permissions: 1)
            let rc = t.enclave.restrictPermissions(&p)
            c.expectIoctl("RESTRICT(R)", errno: rc, expected: 0, count: p.count, 4096, result: p.result, 0)
            let accept = t.call(.eaccept(t.dataStart, SecInfoFlags([.r, .pageType(.reg), .pr]).rawValue))
            c.expectCleanExit("EACCEPT(R|REG|PR)", accept)
            c.expect("EACCEPT ret", accept.op.ret, 0)
            var op = EnclaveOp.put(magic2, at: t.dataStart)
            var run = VDSORun(tcs: t.tcs1)
            let prc = t.call(&op, &run)
            c.expectException("PUT MAGIC2", (prc, run, op), vector: 14, errorCode: 0x8007, address: t.dataStart)
            run.clearException()
            c.expectCleanExit("EMODPE(RW) on TCS #2", t.call(.emodpe(t.dataStart, SecInfoFlags([.r, .w]).rawValue), tcs: t.tcs2))
            let resumed = t.call(&op, &run, leaf: ENCLULeaf.eresume)
            c.expectCleanExit("ERESUME on TCS #1", (resumed, run, op))
            let again = t.call(.get(t.dataStart))
            c.expectCleanExit("GET", again)
            c.expect("GET value", hex(again.op.value), hex(magic2))
            c.expect("user_data", again.run.userData, 0)
        },
        ConformanceCase(name: "augment", summary: "a write to a hole is EAUG'ed, faults 0x8007 until EACCEPT") { c in
            let t = try SelftestEnclave()
            try c.require("CPUID SGX2", t.machine.supportsSGX2, true)
            try c.require("total_size + 4096 < encl_size", t.totalSize + 4096 < t.enclSize, true)
            let page = t.base + t.totalSize
            try c.require("mmap(RWX) of the hole", errnoName(t.enclave.mmap(address: page, length: 4096, protection: .rwx)), "0")
            var op = EnclaveOp.put(magic, at: page)
            var run = VDSORun(tcs: t.tcs1)
            let rc = t.call(&op, &run)
            c.expectException("PUT MAGIC", (rc, run, op), vector: 14, errorCode: 0x8007, address: page)
            run.clearException()
            let accept = t.call(.eaccept(page, regPendingRW), tcs: t.tcs2)
            c.expectCleanExit("EACCEPT(0x20B) on TCS #2", accept)
            c.expect("EACCEPT ret", accept.op.ret, 0)
            let resumed = t.call(&op, &run, leaf: ENCLULeaf.eresume)
            c.expectCleanExit("ERESUME on TCS #1", (resumed, run, op))
            let get = t.call(.get(page))
            c.expectCleanExit("GET", get)
            c.expect("GET value", hex(get.op.value), hex(magic))
            c.expect("munmap", errnoName(t.enclave.munmap(address: page, length: 4096)), "0")
        },
        ConformanceCase(name: "augment_via_eaccept", summary: "EACCEPT of a hole EAUGs it transparently") { c in
            let t = try SelftestEnclave()
            try c.require("CPUID SGX2", t.machine.supportsSGX2, true)
            let page = t.base + t.totalSize
            try c.require("mmap(RWX) of the hole", errnoName(t.enclave.mmap(address: page, length: 4096, protection: .rwx)), "0")
            let accept = t.call(.eaccept(page, regPendingRW))
            c.expectCleanExit("EACCEPT(0x20B)", accept)
            c.expect("EACCEPT ret", accept.op.ret, 0)
            c.expectCleanExit("PUT MAGIC", t.call(.put(magic, at: page)))
            let get = t.call(.get(page))
            c.expectCleanExit("GET", get)
            c.expect("GET value", hex(get.op.value), hex(magic))
        },
        ConformanceCase(name: "tcs_create", summary: "create a TCS at run time, use it, trim and remove it") { c in
            try tcsCreate(c)
        },
        ConformanceCase(name: "remove_added_page_no_eaccept", summary: "REMOVE of a trimmed page not accepted is EPERM") { c in
            let t = try SelftestEnclave()
            try c.requireSGX2(t)
            try putGetAt(c, t, t.dataStart)
            try trimDataStart(c, t)
            var remove = RemovePagesParams(offset: t.dataOffset + 4096, length: 4096)
            let rc = t.enclave.removePages(&remove)
            c.expectIoctl("REMOVE_PAGES", errno: rc, expected: EPERM, count: remove.count, 0)
        },
        ConformanceCase(name: "remove_added_page_invalid_access", summary: "a trimmed page faults 0x8005") { c in
            let t = try SelftestEnclave()
            try c.requireSGX2(t)
            try putGetAt(c, t, t.dataStart)
            try trimDataStart(c, t)
            c.expectException("GET", t.call(.get(t.dataStart)), vector: 14, errorCode: 0x8005, address: t.dataStart)
        },
        ConformanceCase(
            name: "remove_added_page_invalid_access_after_eaccept", summary: "an accepted trimmed page faults 0x8005"
        ) { c in
            let t = try SelftestEnclave()
            try c.requireSGX2(t)
            try putGetAt(c, t, t.dataStart)
            try trimDataStart(c, t)
            let accept = t.call(.eaccept(t.dataStart, trimModified))
            c.expectCleanExit("EACCEPT(TRIM|MODIFIED)", accept)
            c.expect("EACCEPT ret", accept.op.ret, 0)
            c.expectException("GET", t.call(.get(t.dataStart)), vector: 14, errorCode: 0x8005, address: t.dataStart)
        },
        ConformanceCase(name: "remove_untouched_page", summary: "trim, accept and remove a page never touched") { c in
            let t = try SelftestEnclave()
            try c.requireSGX2(t)
            try trimDataStart(c, t)
            let accept = t.call(.eaccept(t.dataStart, trimModified))
            c.expectCleanExit("EACCEPT(TRIM|MODIFIED)", accept)
            c.expect("EACCEPT ret", accept.op.ret, 0)
            var remove = RemovePagesParams(offset: t.dataOffset + 4096, length: 4096)
            let rc = t.enclave.removePages(&remove)
            c.expectIoctl("REMOVE_PAGES", errno: rc, expected: 0, count: remove.count, 4096)
        },
    ]

    static func putGetBuffer(_ c: Checks, _ t: SelftestEnclave) throws {
        var put = EnclaveOp(.putToBuffer)
        put.value = magic
        let p = t.call(put)
        c.expectCleanExit("PUT_TO_BUFFER", p)
        c.expect("PUT user_data", p.run.userData, 0)
        let g = t.call(EnclaveOp(.getFromBuffer))
        c.expectCleanExit("GET_FROM_BUFFER", g)
        c.expect("GET value", hex(g.op.value), hex(magic))
    }

    static func putGetAt(_ c: Checks, _ t: SelftestEnclave, _ address: UInt64) throws {
        try c.requireCleanExit("PUT MAGIC", t.call(.put(magic, at: address)))
        let get = t.call(.get(address))
        try c.requireCleanExit("GET", get)
        try c.require("GET value", hex(get.op.value), hex(magic))
    }

    static func trimDataStart(_ c: Checks, _ t: SelftestEnclave) throws {
        var p = ModifyTypesParams(offset: t.dataOffset + 4096, length: 4096, pageType: UInt64(SGXPageType.trim.rawValue))
        let rc = t.enclave.modifyTypes(&p)
        c.expectIoctl("MODIFY_TYPES(TRIM)", errno: rc, expected: 0, count: p.count, 4096, result: p.result, 0)
        try c.require("MODIFY_TYPES(TRIM) errno", errnoName(rc), "0")
    }

    static func tcsCreate(_ c: Checks) throws {
        let t = try SelftestEnclave()
        try c.requireSGX2(t)
        try c.require("total_size + 3 * 4096 < encl_size", t.totalSize + 3 * 4096 < t.enclSize, true)
        let stackEnd = t.base + t.totalSize
        let tcs = stackEnd + 4096
        let ssa = stackEnd + 8192
        try c.require("mmap(RW) of three pages", errnoName(t.enclave.mmap(address: stackEnd, length: 3 * 4096, protection: .rw)), "0")
        for (label, page) in [("stack_end", stackEnd), ("ssa", ssa), ("tcs", tcs)] {
            let r = t.call(.eaccept(page, regPendingRW))
            try c.requireCleanExit("EACCEPT(0x20B) \(label)", r)
            c.expect("EACCEPT \(label) ret", r.op.ret, 0)
        }
        var initOp = EnclaveOp(.initTCSPage)
        initOp.tcsPage = tcs
        initOp.ssa = t.totalSize + 8192
        initOp.entry = t.dynamicEntryOffset
        try c.requireCleanExit("INIT_TCS_PAGE", t.call(initOp))
        var toTCS = ModifyTypesParams(offset: t.totalSize + 4096, length: 4096, pageType: UInt64(SGXPageType.tcs.rawValue))
        let rc = t.enclave.modifyTypes(&toTCS)
        c.expectIoctl("MODIFY_TYPES(TCS)", errno: rc, expected: 0, count: toTCS.count, 4096, result: toTCS.result, 0)
        let acceptTCS = t.call(.eaccept(tcs, tcsModified))
        try c.requireCleanExit("EACCEPT(TCS|MODIFIED)", acceptTCS)
        c.expect("EACCEPT(TCS|MODIFIED) ret", acceptTCS.op.ret, 0)
        var put = EnclaveOp(.putToBuffer)
        put.value = magic
        c.expectCleanExit("PUT_TO_BUFFER on the new TCS", t.call(put, tcs: tcs))
        let get = t.call(EnclaveOp(.getFromBuffer), tcs: tcs)
        c.expectCleanExit("GET_FROM_BUFFER on the new TCS", get)
        c.expect("GET value", hex(get.op.value), hex(magic))
        var trim = ModifyTypesParams(offset: t.totalSize, length: 3 * 4096, pageType: UInt64(SGXPageType.trim.rawValue))
        let trc = t.enclave.modifyTypes(&trim)
        c.expectIoctl("MODIFY_TYPES(TRIM) of three pages", errno: trc, expected: 0, count: trim.count, 12288, result: trim.result, 0)
        for (label, page) in [("stack_end", stackEnd), ("tcs", tcs), ("ssa", ssa)] {
            let r = t.call(.eaccept(page, trimModified))
            c.expectCleanExit("EACCEPT(TRIM|MODIFIED) \(label)", r)
            c.expect("EACCEPT(TRIM|MODIFIED) \(label) ret", r.op.ret, 0)
        }
        var remove = RemovePagesParams(offset: t.totalSize, length: 3 * 4096)
        let rrc = t.enclave.removePages(&remove)
        c.expectIoctl("REMOVE_PAGES", errno: rrc, expected: 0, count: remove.count, 12288)
        let reaug = t.call(.eaccept(tcs, regPendingRW))
        c.expectCleanExit("EACCEPT(0x20B) of the removed TCS address", reaug)
        c.expect("EACCEPT ret", reaug.op.ret, 0)
        c.expectCleanExit("PUT MAGIC at the old TCS", t.call(.put(magic, at: tcs)))
        let g = t.call(.get(tcs))
        c.expectCleanExit("GET at the old TCS", g)
        c.expect("GET value", hex(g.op.value), hex(magic))
    }
}
