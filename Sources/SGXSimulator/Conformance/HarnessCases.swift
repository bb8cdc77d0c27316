import EDMMCore
import Glibc
import SGXDevice

/// What the kernel's own selftests, built unmodified and run natively against the simulator
/// (scripts/test-kselftest-sgx.sh, c/kselftest), need from it beyond the cases above:
/// SGX_IOC_ENCLAVE_CREATE with a real SECS and INIT with a real SIGSTRUCT (K1, K2), ENCLU with
/// its registers and a SECINFO in enclave memory (K3), the TCS side of EENTER, ERESUME, EEXIT
/// and AEX (K4), what a page grants native code (K5), and CPUID leaf 0x12 (K6).
enum HarnessCases {
    static let all: [ConformanceCase] = [
        ConformanceCase(
            name: "K1_create_checks_the_secs", summary: "CREATE: a size that is no power of two is EINVAL, ECREATE's #GP EIO"
        ) { c in
            let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
            func create(_ secs: SECS) -> String {
                switch SimulatedEnclave.create(machine: machine, secs: secs) {
                case .created(let enclave):
                    enclave.close()
                    return "0"
                case .failed(let code, _):
                    return errnoName(code)
                }
            }
            // load.c's SECS: 64-bit, XFRM x87|SSE, one SSA page.
            let selftest = SECS(size: 1 << 16, baseAddress: 1 << 30)
            c.expect("the selftests' SECS", create(selftest), "0")
            func changed(_ change: (inout SECS) -> Void) -> String {
                var secs = selftest
                change(&secs)
                return create(secs)
            }
            c.expect("SIZE 3 << 14", changed { $0.size = 3 << 14 }, "EINVAL")
            c.expect("SIZE 0", changed { $0.size = 0 }, "EINVAL")
            c.expect("SIZE one page", changed { $0.size = 4096 }, "EIO")
            c.expect("BASEADDR not aligned to SIZE", changed { $0.baseAddress += 4096 }, "EIO")
            c.expect("ATTRIBUTES.INIT", changed { $0.attributes |= SGXFeatures.attributeInit }, "EIO")
            c.expect("reserved ATTRIBUTES bit 3", changed { $0.attributes |= 1 << 3 }, "EIO")
            c.expect("XFRM without SSE", changed { $0.xfrm = 0x1 }, "EIO")
            c.expect("XFRM with AVX-512", changed { $0.xfrm = 0xE7 }, "EIO")
            c.expect("XFRM with AVX", changed { $0.xfrm = 0x7 }, "0")
            c.expect("SSAFRAMESIZE 0", changed { $0.ssaFrameSize = 0 }, "EIO")
            c.expect("reserved MISCSELECT bit 1", changed { $0.miscselect = 0x2 }, "EIO")
            c.expect("MISCSELECT EXINFO", changed { $0.miscselect = 0x1 }, "0")
            c.expect("a reserved field not zero", changed { $0.reservedFieldsAreZero = false }, "EIO")
            c.expect("32-bit enclave under 4 GiB", changed { ($0.attributes, $0.baseAddress) = (0, 1 << 20) }, "0")
            c.expect("32-bit enclave above 4 GiB", changed { ($0.attributes, $0.baseAddress) = (0, 1 << 32) }, "EIO")
            c.expect("EPC used after every enclave closed", machine.stats.usedPages, 0)
            // The page as the ioctl copies it in: struct sgx_secs of asm/sgx.h.
            var page = [UInt8](repeating: 0, count: SECS.byteCount)
            page.withUnsafeMutableBytes { p in
                p.storeBytes(of: UInt64(1 << 16), toByteOffset: 0, as: UInt64.self)
                p.storeBytes(of: UInt64(1 << 30), toByteOffset: 8, as: UInt64.self)
                p.storeBytes(of: UInt32(1), toByteOffset: 16, as: UInt32.self)
                p.storeBytes(of: SGXFeatures.mode64Bit, toByteOffset: 48, as: UInt64.self)
                p.storeBytes(of: UInt64(3), toByteOffset: 56, as: UInt64.self)
                p[64] = 0xAA  // MRENCLAVE: ignored
            }
            c.expect("decoded SECS", page.withUnsafeBytes { SECS(bytes: $0) }, selftest)
            page[300] = 1  // RESERVED4
            c.expect("RESERVED4 not zero", page.withUnsafeBytes { SECS(bytes: $0) }.reservedFieldsAreZero, false)
        },
        ConformanceCase(
            name: "K2_init_checks_the_sigstruct", summary: "INIT: vendor 0 or 0x8086, no enforced reserved bit; any signature"
        ) { c in
            // Offsets in struct sgx_sigstruct: header.vendor 16; body.miscselect 900, misc_mask
            // 904, attributes 928, xfrm 936, attributes_mask 944, xfrm_mask 952.
            func refused(_ fields: (offset: Int, value: UInt64, size: Int)...) -> Bool {
                var bytes = [UInt8](repeating: 0, count: SigStruct.byteCount)
                for f in fields {
                    withUnsafeBytes(of: f.value.littleEndian) {
                        bytes.replaceSubrange(f.offset..<f.offset + f.size, with: $0.prefix(f.size))
                    }
                }
                return bytes.withUnsafeBytes { SigStruct(bytes: $0) }.initRefusal != nil
            }
            c.expect("all zero", refused(), false)
            c.expect("vendor 0x8086", refused((16, 0x8086, 4)), false)
            c.expect("vendor 0x1234", refused((16, 0x1234, 4)), true)
            c.expect("reserved ATTRIBUTES bit, not enforced", refused((928, 1 << 8, 8)), false)
            c.expect("reserved ATTRIBUTES bit, enforced", refused((928, 1 << 8, 8), (944, 1 << 8, 8)), true)
            c.expect("reserved XFRM bit, enforced", refused((936, 1 << 9, 8), (952, 1 << 9, 8)), true)
            c.expect("reserved MISCSELECT bit, enforced", refused((900, 2, 4), (904, 2, 4)), true)
        },
        ConformanceCase(
            name: "K3_enclu_reads_secinfo_from_enclave_memory", summary: "ENCLU's SECINFO: 64-byte aligned, readable, reserved bytes zero"
        ) { c in
            let t = try SelftestEnclave()
            let hole = t.base + t.totalSize
            try c.require("mmap(RW) of the hole", errnoName(t.enclave.mmap(address: hole, length: 4096, protection: .rw)), "0")
            // A SECINFO on the enclave's data page, as do_encl_eaccept() keeps it on its stack.
            let secinfo = t.dataStart + 64
            try c.require("write SECINFO.FLAGS", t.cpu.write(secinfo, SelftestCases.regPendingRW).failure, nil)
            c.expect("EACCEPT, SECINFO at +8", t.cpu.enclu(leaf: 5, rbx: secinfo + 8, rcx: hole, rdx: 0), .exception(.generalProtection))
            try c.require("write a reserved byte", t.cpu.write(secinfo + 8, 1).failure, nil)
            c.expect("EACCEPT, reserved byte set", t.cpu.enclu(leaf: 5, rbx: secinfo, rcx: hole, rdx: 0), .exception(.generalProtection))
            c.expect("hole untouched", t.enclave.pageInfo(offset: t.totalSize).state, .hole)
            try c.require("clear it", t.cpu.write(secinfo + 8, 0).failure, nil)
            c.expect("EACCEPT of the hole", t.cpu.enclu(leaf: 5, rbx: secinfo, rcx: hole, rdx: 0), .success)
            c.expect("page accepted", "\(t.enclave.pageInfo(offset: t.totalSize).state)", "reg")
            c.expect(
                "SECINFO on a TCS page", t.cpu.enclu(leaf: 5, rbx: t.tcs1 + 64, rcx: hole, rdx: 0),
                .exception(.pageFault(errorCode: 0x8005, address: t.tcs1)))
            let unmapped = t.base + t.enclSize - 4096
            c.expect(
                "SECINFO where nothing is mapped", t.cpu.enclu(leaf: 5, rbx: unmapped, rcx: hole, rdx: 0),
                .exception(.pageFault(errorCode: 0x4, address: unmapped)))
            try c.require("SECINFO.FLAGS = X", t.cpu.write(secinfo, SecInfoFlags.x.rawValue).failure, nil)
            c.expect("EMODPE(X)", t.cpu.enclu(leaf: 6, rbx: secinfo, rcx: hole, rdx: 0), .success)
            c.expect("permissions", t.enclave.pageInfo(offset: t.totalSize).permissions, .rwx)
            c.expect("EENTER inside the enclave", t.cpu.enclu(leaf: 2, rbx: secinfo, rcx: hole, rdx: 0), .exception(.generalProtection))
            c.expect("leaf 8", t.cpu.enclu(leaf: 8, rbx: secinfo, rcx: hole, rdx: 0), .exception(.generalProtection))
            c.expect("EREPORT (not modelled)", t.cpu.enclu(leaf: 0, rbx: secinfo, rcx: hole, rdx: 0) == nil, true)
        },
        ConformanceCase(
            name: "K4_tcs_entry_and_exit", summary: "EENTER/ERESUME/EEXIT/AEX on the TCS: state, CSSA, OENTRY, counters"
        ) { c in
            let t = try SelftestEnclave()
            let before = t.enclave.counters
            let entered = t.cpu.enterTCS(t.tcs1, leaf: ENCLULeaf.eenter)
            // The selftest TCS: OENTRY at the text, OSSA at the third data page, NSSA 1.
            let expected = TCSEntry(entry: t.base + 2 * 4096, ssa: t.base + t.dataOffset + 2 * 4096, cssa: 0, nssa: 1)
            c.expect("EENTER", entered, .success(expected))
            c.expect("EENTER of the active TCS", t.cpu.enterTCS(t.tcs1, leaf: ENCLULeaf.eenter).failure, .generalProtection)
            c.expect("EENTER of TCS #2 meanwhile", t.cpu.enterTCS(t.tcs2, leaf: ENCLULeaf.eenter).failure, nil)
            c.expect("EEXIT from TCS #2", t.cpu.leaveTCS(t.tcs2, aex: false), 0)
            c.expect("AEX: SSA frame", t.cpu.leaveTCS(t.tcs1, aex: true), 0)
            c.expect("EENTER with CSSA == NSSA", t.cpu.enterTCS(t.tcs1, leaf: ENCLULeaf.eenter).failure, .generalProtection)
            c.expect("ERESUME: the frame popped", t.cpu.enterTCS(t.tcs1, leaf: ENCLULeaf.eresume).map(\.cssa), .success(0))
            c.expect("EEXIT", t.cpu.leaveTCS(t.tcs1, aex: false), 0)
            c.expect("EEXIT of an inactive TCS", t.cpu.leaveTCS(t.tcs1, aex: false), nil)
            c.expect("AEX of an inactive TCS", t.cpu.leaveTCS(t.tcs1, aex: true), nil)
            c.expect("ERESUME with CSSA 0", t.cpu.enterTCS(t.tcs1, leaf: ENCLULeaf.eresume).failure, .generalProtection)
            c.expect(
                "EENTER of a REG page", t.cpu.enterTCS(t.dataStart, leaf: ENCLULeaf.eenter).failure,
                .pageFault(errorCode: 0x8005, address: t.dataStart))
            c.expect("EENTER of a misaligned TCS", t.cpu.enterTCS(t.tcs1 + 8, leaf: ENCLULeaf.eenter).failure, .generalProtection)
            c.expect("leaf EEXIT", t.cpu.enterTCS(t.tcs1, leaf: ENCLULeaf.eexit).failure, .generalProtection)
            let after = t.enclave.counters
            c.expect(
                "EENTER, ERESUME, EEXIT, AEX counted",
                [
                    after[.eenter] - before[.eenter], after[.eresume] - before[.eresume],
                    after[.eexit] - before[.eexit], after[.aex] - before[.aex],
                ], [2, 1, 2, 1])
        },
        ConformanceCase(
            name: "K5_probe_grants_vma_and_epcm", summary: "what a page lets native code do: VMA and EPCM in common, else the fault"
        ) { c in
            let t = try SelftestEnclave()
            let text = t.base + 2 * 4096
            c.expect("read data_start", t.cpu.probe(t.dataStart, .read), .success(.rw))
            c.expect("execute the text", t.cpu.probe(text, .execute), .success(.rx))
            c.expect("write the text", t.cpu.probe(text, .write).failure, .pageFault(errorCode: 0x7, address: text))
            c.expect("read a TCS", t.cpu.probe(t.tcs1, .read).failure, .pageFault(errorCode: 0x8005, address: t.tcs1))
            try c.require("mprotect(R)", errnoName(t.enclave.mprotect(address: t.dataStart, length: 4096, protection: .read)), "0")
            c.expect("read under a read-only VMA", t.cpu.probe(t.dataStart, .read), .success(.read))
            c.expect(
                "write under a read-only VMA", t.cpu.probe(t.dataStart, .write).failure, .pageFault(errorCode: 0x7, address: t.dataStart))
            try c.require("mprotect(RW)", errnoName(t.enclave.mprotect(address: t.dataStart, length: 4096, protection: .rw)), "0")
            var r = RestrictPermissionsParams(offset: t.dataStart - t.base, length: 4096, permissions: 1)
            try c.require("RESTRICT(R)", errnoName(t.enclave.restrictPermissions(&r)), "0")
            try c.requireCleanExit("EACCEPT(REG|PR|R)", t.call(.eaccept(t.dataStart, SecInfoFlags([.pageType(.reg), .pr, .r]).rawValue)))
            c.expect("read, EPCM R", t.cpu.probe(t.dataStart, .read), .success(.read))
            c.expect("write, EPCM R", t.cpu.probe(t.dataStart, .write).failure, .pageFault(errorCode: 0x8007, address: t.dataStart))
            let hole = t.base + t.totalSize
            try c.require("mmap(RWX) of the hole", errnoName(t.enclave.mmap(address: hole, length: 4096, protection: .rwx)), "0")
            c.expect("write the hole", t.cpu.probe(hole, .write).failure, .pageFault(errorCode: 0x8007, address: hole))
            c.expect("hole EAUG'ed", t.enclave.pageInfo(offset: t.totalSize).state, .regPending)
            try c.requireCleanExit("EACCEPT(0x20B)", t.call(.eaccept(hole, SelftestCases.regPendingRW)))
            c.expect("write the accepted page, VMA RWX", t.cpu.probe(hole, .write), .success(.rw))
        },
        ConformanceCase(name: "K6_cpuid_leaf_0x12", summary: "CPUID 0x12: SGX1/SGX2, EPC section of the machine's size, end") { c in
            let machine = try SimulatedMachine.create(.init(epcPages: 3000, enclaveCapacity: 2, sgx2: true))
            let leaf0 = machine.cpuidLeaf12(subleaf: 0)
            c.expect("SGX1 and SGX2", leaf0.eax & 0x3, 0x3)
            c.expect("largest 64-bit enclave", leaf0.edx >> 8 & 0xFF, UInt32(SGXFeatures.maxEnclaveSizeLog2Mode64))
            let leaf1 = machine.cpuidLeaf12(subleaf: 1)
            c.expect("ATTRIBUTES", UInt64(leaf1.ebx) << 32 | UInt64(leaf1.eax), SGXFeatures.attributes)
            c.expect("XFRM", UInt64(leaf1.edx) << 32 | UInt64(leaf1.ecx), SGXFeatures.xfrm)
            let section = machine.cpuidLeaf12(subleaf: 2)
            c.expect("section type", section.eax & 0xF, 1)
            c.expect("section size", UInt64(section.ecx & 0xFFFF_F000) | UInt64(section.edx & 0xF_FFFF) << 32, 3000 * 4096)
            c.expect("end of the list", machine.cpuidLeaf12(subleaf: 3).eax & 0xF, 0)
            let sgx1 = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 2, sgx2: false))
            c.expect("SGX1-only machine", sgx1.cpuidLeaf12(subleaf: 0).eax & 0x3, 0x1)
        },
    ]
}
