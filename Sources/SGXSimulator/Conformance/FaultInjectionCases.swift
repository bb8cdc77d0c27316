import EDMMCore
import Glibc
import SGXDevice

/// Cases F1...F4: the transient failures of the Linux driver and the hardware, injected
/// (`SimulatorFaults`), each with exactly what `arch/x86/kernel/cpu/sgx/ioctl.c` and `encl.c`
/// leave behind: the errno, `count`, `result`, and the page as it was.
enum FaultInjectionCases {
    static let trim = UInt64(SGXPageType.trim.rawValue)
    static let tcsType = UInt64(SGXPageType.tcs.rawValue)
    static let regPendingRW = SelftestCases.regPendingRW
    static let trimModified = SelftestCases.trimModified

    static let all: [ConformanceCase] = [
        ConformanceCase(name: "F1_load_ebusy_eagain", summary: "sgx_encl_load_page() -EBUSY mid-range: EAGAIN, count at that page") {
            c in
            let t = try SelftestEnclave()
            let data = t.dataOffset
            // The third page of the range is being reclaimed when the loop reaches it.
            injectAt(t, bytes: 8192, SimulatorFaults(rates: [.loadBusy: 1]))
            var r = RestrictPermissionsParams(offset: data, length: 4 * 4096, permissions: 1)
            let rc = t.enclave.restrictPermissions(&r)
            t.enclave.setPageBoundaryHook(nil)
            c.expectIoctl("RESTRICT(R) of four pages", errno: rc, expected: EAGAIN, count: r.count, 8192, result: r.result, 0)
            c.expect("pages before count restricted", [0, 1].map { t.enclave.pageInfo(offset: data + $0 * 4096).state }, [.regPR, .regPR])
            c.expect("pages from count on untouched", [2, 3].map { t.enclave.pageInfo(offset: data + $0 * 4096).state }, [.reg, .reg])
            t.machine.setFaults(.off)
            // The retry the selftests' proposed EAGAIN loop (and IoctlRunner) makes: resume at count.
            var rest = RestrictPermissionsParams(offset: data + r.count, length: 4 * 4096 - r.count, permissions: 1)
            let rrc = t.enclave.restrictPermissions(&rest)
            c.expectIoctl("RESTRICT(R) resumed at count", errno: rrc, expected: 0, count: rest.count, 8192, result: rest.result, 0)
            t.machine.setFaults(SimulatorFaults(rates: [.loadBusy: 1]))
            var x = RemovePagesParams(offset: t.heap.offset, length: 4096)
            c.expectIoctl("REMOVE_PAGES, first page busy", errno: t.enclave.removePages(&x), expected: EAGAIN, count: x.count, 0)
            c.expect("opportunities / injected", t.machine.faultCounts[.loadBusy], FaultCount(opportunities: 1, injected: 1))
        },
        ConformanceCase(
            name: "F2_reclaimer_holds_page", summary: "sgx_unmark_page_reclaimable() fails: EAGAIN on REG->TCS, EBUSY on REMOVE"
        ) { c in
            let t = try SelftestEnclave()
            let hole = try DerivedCases.acceptedHole(c, t) - t.base
            t.machine.setFaults(SimulatorFaults(rates: [.reclaimerHoldsPage: 1]))
            var m = ModifyTypesParams(offset: hole, length: 4096, pageType: tcsType)
            let rc = t.enclave.modifyTypes(&m)
            c.expectIoctl("MODIFY_TYPES(TCS)", errno: rc, expected: EAGAIN, count: m.count, 0, result: m.result, 0)
            let info = t.enclave.pageInfo(offset: hole)
            // out_entry_changed: vm_max_prot_bits back to the EAUG'ed page's RWX; the page stays REG.
            c.expect(
                "page after the EAGAIN", "\(info.state) \(info.kernelType.map { "\($0)" } ?? "-") cap \(info.vmMaxProtection)",
                "reg REG cap rwx")
            // MODIFY_TYPES(TRIM) does not unmark the page; the accepted trim then meets the reclaimer.
            var trimIt = ModifyTypesParams(offset: hole, length: 4096, pageType: trim)
            try c.require("MODIFY_TYPES(TRIM) errno", errnoName(t.enclave.modifyTypes(&trimIt)), "0")
            try c.requireCleanExit("EACCEPT(TRIM|MODIFIED)", t.call(.eaccept(t.base + hole, trimModified)))
            var x = RemovePagesParams(offset: hole, length: 4096)
            c.expectIoctl("REMOVE_PAGES", errno: t.enclave.removePages(&x), expected: EBUSY, count: x.count, 0)
            c.expect("page still an accepted TRIM", t.enclave.pageInfo(offset: hole).state, .trim)
            t.machine.setFaults(.off)
            var again = RemovePagesParams(offset: hole, length: 4096)
            c.expectIoctl("REMOVE_PAGES again", errno: t.enclave.removePages(&again), expected: 0, count: again.count, 4096)
        },
        ConformanceCase(name: "F3_eaug_sigbus", summary: "EAUG fails on a fault: SIGBUS, reported as a not-present #PF") { c in
            let t = try SelftestEnclave()
            let hole = t.base + t.totalSize
            try c.require("mmap(RW) of the hole", errnoName(t.enclave.mmap(address: hole, length: 4096, protection: .rw)), "0")
            t.machine.setFaults(SimulatorFaults(rates: [.eaugFailure: 1]))
            var op = EnclaveOp.put(SelftestEnclave.magic, at: hole)
            var run = VDSORun(tcs: t.tcs1)
            let rc = t.call(&op, &run)
            // Not 0x8007: the kernel could not add the page, so the fault never reached the EPCM.
            c.expectException("PUT MAGIC to the hole", (rc, run, op), vector: 14, errorCode: 0x6, address: hole)
            c.expect("the hole is still a hole", t.enclave.pageInfo(offset: t.totalSize).state, .hole)
            var accept = EnclaveOp.eaccept(hole, regPendingRW)
            var acceptRun = VDSORun(tcs: t.tcs2)
            let arc = t.call(&accept, &acceptRun)
            c.expectException("EACCEPT(0x20B) on TCS #2", (arc, acceptRun, accept), vector: 14, errorCode: 0x4, address: hole)
            c.expect("EAUGs refused", t.machine.faultCounts[.eaugFailure]?.injected, 2)
            t.machine.setFaults(.off)
            // The runtime resumes (the EPC has room again): the EACCEPT runs again and EAUGs the page.
            acceptRun.clearException()
            let resumed = t.call(&accept, &acceptRun, leaf: ENCLULeaf.eresume)
            c.expectCleanExit("ERESUME of the EACCEPT", (resumed, acceptRun, accept))
            c.expect("EACCEPT ret", accept.ret, 0)
            run.clearException()
            c.expectCleanExit("ERESUME of the PUT", (t.call(&op, &run, leaf: ENCLULeaf.eresume), run, op))
            let get = t.call(.get(hole))
            c.expectCleanExit("GET", get)
            c.expect("GET value", hex(get.op.value), hex(SelftestEnclave.magic))
        },
        ConformanceCase(
            name: "F4_epc_page_conflict", summary: "EMODPR/EMODT race an EACCEPT: EFAULT, result 7, the page as it was"
        ) { c in
            let t = try SelftestEnclave()
            let data = t.dataOffset
            injectAt(t, bytes: 8192, SimulatorFaults(rates: [.pageConflict: 1]))
            var r = RestrictPermissionsParams(offset: data, length: 3 * 4096, permissions: 1)
            let rc = t.enclave.restrictPermissions(&r)
            t.enclave.setPageBoundaryHook(nil)
            c.expectIoctl(
                "RESTRICT(R), third page in use", errno: rc, expected: EFAULT, count: r.count, 8192, result: r.result,
                SGXErrorCode.epcPageConflict)
            let third = t.enclave.pageInfo(offset: data + 8192)
            c.expect("third page unchanged", "\(third.state) \(third.permissions)", "reg rw-")
            // REG->TCS: the PTEs were zapped before EMODT; the cap goes back (out_entry_changed).
            let hole = try DerivedCases.acceptedHole(c, t) - t.base
            var m = ModifyTypesParams(offset: hole, length: 4096, pageType: tcsType)
            let mrc = t.enclave.modifyTypes(&m)
            c.expectIoctl(
                "MODIFY_TYPES(TCS)", errno: mrc, expected: EFAULT, count: m.count, 0, result: m.result, SGXErrorCode.epcPageConflict)
            let info = t.enclave.pageInfo(offset: hole)
            c.expect("page after the conflict", "\(info.state) cap \(info.vmMaxProtection)", "reg cap rwx")
            t.machine.setFaults(.off)
            var again = RestrictPermissionsParams(offset: data + r.count, length: 4096, permissions: 1)
            c.expectIoctl(
                "RESTRICT(R) of the third page again", errno: t.enclave.restrictPermissions(&again), expected: 0, count: again.count,
                4096, result: again.result, 0)
        },
    ]

    /// Switches `faults` on when an ioctl of `t` has done `bytes` (between two of its pages).
    static func injectAt(_ t: SelftestEnclave, bytes: UInt64, _ faults: SimulatorFaults) {
        let machine = t.machine
        t.enclave.setPageBoundaryHook { done in if done == bytes { machine.setFaults(faults) } }
    }

    /// `unclobbered_vdso_oversubscribed_remove` with every fault injected: MODIFY_TYPES and
    /// REMOVE_PAGES are retried from `count` as the selftests' proposed EAGAIN loop does (here
    /// `IoctlRunner`, which also retries EBUSY, and a resume after SGX_EPC_PAGE_CONFLICT, which
    /// the single-threaded test can only meet injected). The end state must be mainline's.
    static func oversubscribedRemoveUnderFaults(_ c: Checks) throws {
        let faults = SimulatorFaults.all(0.02, seed: 16)
        let t = try SelftestEnclave(epcPages: 1024, heapPages: 1024)
        t.machine.setFaults(faults)
        let runner = IoctlRunner(sleep: { _ in })
        func run(_ ioctl: EnclaveIoctl, _ label: String) {
            var done: UInt64 = 0
            var conflicts = 0
            while true {
                let outcome = runner.run(ioctl, offset: t.heap.offset + done, length: t.heap.size - done, on: t.enclave)
                done += outcome.bytesDone
                guard outcome.errno == EFAULT, outcome.result == SGXErrorCode.epcPageConflict, conflicts < 100 else {
                    c.expect("with faults: \(label) errno", errnoName(outcome.errno), "0")
                    break
                }
                conflicts += 1
            }
            c.expect("with faults: \(label) bytes done", done, t.heap.size)
        }
        run(.modifyTypes(.trim), "MODIFY_TYPES(TRIM) heap")
        var failures = 0
        for page in stride(from: t.heap.offset, to: t.heap.offset + t.heap.size, by: Int(Page.size)) {
            let r = t.call(.eaccept(t.base + page, trimModified))
            if !(r.rc == 0 && r.run.function == ENCLULeaf.eexit && r.run.hasNoException && r.op.ret == 0) { failures += 1 }
        }
        c.expect("with faults: failed EACCEPTs", failures, 0)
        run(.removePages, "REMOVE_PAGES heap")
        c.expect("with faults: heap pages left", t.enclave.presentPages, t.heap.offset / Page.size)
        let counts = t.machine.faultCounts
        for kind in [SimulatorFaults.Kind.loadBusy, .reclaimerHoldsPage, .pageConflict] {
            c.expect("with faults: \(kind) injected", (counts[kind]?.injected ?? 0) > 0, true)
        }
        c.expect("with faults: EPC invariants", t.machine.checkInvariants(enclaves: [t.enclave]).map(\.description), [])
    }
}
