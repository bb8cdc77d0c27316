import SGXSimulator
import Testing

/// Each kernel selftest and derived case, asserted expectation by expectation. The suite itself
/// is library code (`ConformanceSuite`), shared with `edmm-sim conformance`.
@Suite("Kernel selftests and derived cases on the simulator")
struct ConformanceTests {
    private func assertCase(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let result = ConformanceSuite.run(name)
        #expect(result.aborted == nil, "\(name) aborted: \(result.aborted ?? "")", sourceLocation: sourceLocation)
        #expect(!result.expectations.isEmpty, "\(name) checked nothing", sourceLocation: sourceLocation)
        for e in result.expectations {
            #expect(e.actual == e.expected, "\(name): \(e.label)", sourceLocation: sourceLocation)
        }
    }

    @Test func everyCaseHasATest() {
        let tested: Set<String> = [
            "unclobbered_vdso", "unclobbered_vdso_oversubscribed", "clobbered_vdso", "clobbered_vdso_and_user_function",
            "tcs_entry", "pte_permissions", "unclobbered_vdso_oversubscribed_remove", "tcs_permissions",
            "epcm_permissions", "augment", "augment_via_eaccept", "tcs_create", "remove_added_page_no_eaccept",
            "remove_added_page_invalid_access", "remove_added_page_invalid_access_after_eaccept", "remove_untouched_page",
            "D1_concurrent_ioctl_ebusy", "D2_not_initialized", "D3_bad_offset_or_length", "D4_nonzero_count_or_result",
            "D5_bad_permissions", "D6_bad_page_type", "D7_restrict_pending_page", "D8_modify_pending_page",
            "D9_trim_unaccepted_tcs", "D10_text_to_tcs", "D11_ioctls_on_trim_page", "D12_range_runs_into_hole",
            "D13_remove_runs_into_reg", "D14_map_outside_elrange", "D15_map_beyond_page_cap", "D16_map_private",
            "D17_eaccept_accepted_page", "D18_eaccept_without_pending_or_pr", "D19_eaccept_pr_wrong_permissions",
            "D20_emodpe_execute", "D21_access_removed_page", "D22_untrusted_access_before_einit", "D23_sgx1_cpu_no_eaug",
            "F1_load_ebusy_eagain", "F2_reclaimer_holds_page", "F3_eaug_sigbus", "F4_epc_page_conflict",
            "C1_eacceptcopy_initializes_a_pending_page", "C2_eacceptcopy_unreadable_source", "C3_eacceptcopy_read_only_destination",
            "C4_eacceptcopy_operand_order", "C5_eacceptcopy_ignores_pending_modified_pr", "P1_ecreate_one_page",
            "P2_fetch_without_vm_exec", "E1_va_pages_outlive_removal", "E2_secs_written_back_with_last_page",
            "K1_create_checks_the_secs", "K2_init_checks_the_sigstruct", "K3_enclu_reads_secinfo_from_enclave_memory",
            "K4_tcs_entry_and_exit", "K5_probe_grants_vma_and_epcm", "K6_cpuid_leaf_0x12",
        ]
        #expect(Set(ConformanceSuite.cases.map(\.name)) == tested)
    }

    // SGX1 baseline
    @Test func unclobbered_vdso() { assertCase("unclobbered_vdso") }
    @Test func unclobbered_vdso_oversubscribed() { assertCase("unclobbered_vdso_oversubscribed") }
    @Test func clobbered_vdso() { assertCase("clobbered_vdso") }
    @Test func clobbered_vdso_and_user_function() { assertCase("clobbered_vdso_and_user_function") }
    @Test func tcs_entry() { assertCase("tcs_entry") }
    @Test func pte_permissions() { assertCase("pte_permissions") }

    // The ten SGX2 selftests
    @Test func unclobbered_vdso_oversubscribed_remove() { assertCase("unclobbered_vdso_oversubscribed_remove") }
    @Test func tcs_permissions() { assertCase("tcs_permissions") }
    @Test func epcm_permissions() { assertCase("epcm_permissions") }
    @Test func augment() { assertCase("augment") }
    @Test func augment_via_eaccept() { assertCase("augment_via_eaccept") }
    @Test func tcs_create() { assertCase("tcs_create") }
    @Test func remove_added_page_no_eaccept() { assertCase("remove_added_page_no_eaccept") }
    @Test func remove_added_page_invalid_access() { assertCase("remove_added_page_invalid_access") }
    @Test func remove_added_page_invalid_access_after_eaccept() {
        assertCase("remove_added_page_invalid_access_after_eaccept")
    }
    @Test func remove_untouched_page() { assertCase("remove_untouched_page") }

    // Derived cases
    @Test func D1_concurrent_ioctl_ebusy() { assertCase("D1_concurrent_ioctl_ebusy") }
    @Test func D2_not_initialized() { assertCase("D2_not_initialized") }
    @Test func D3_bad_offset_or_length() { assertCase("D3_bad_offset_or_length") }
    @Test func D4_nonzero_count_or_result() { assertCase("D4_nonzero_count_or_result") }
    @Test func D5_bad_permissions() { assertCase("D5_bad_permissions") }
    @Test func D6_bad_page_type() { assertCase("D6_bad_page_type") }
    @Test func D7_restrict_pending_page() { assertCase("D7_restrict_pending_page") }
    @Test func D8_modify_pending_page() { assertCase("D8_modify_pending_page") }
    @Test func D9_trim_unaccepted_tcs() { assertCase("D9_trim_unaccepted_tcs") }
    @Test func D10_text_to_tcs() { assertCase("D10_text_to_tcs") }
    @Test func D11_ioctls_on_trim_page() { assertCase("D11_ioctls_on_trim_page") }
    @Test func D12_range_runs_into_hole() { assertCase("D12_range_runs_into_hole") }
    @Test func D13_remove_runs_into_reg() { assertCase("D13_remove_runs_into_reg") }
    @Test func D14_map_outside_elrange() { assertCase("D14_map_outside_elrange") }
    @Test func D15_map_beyond_page_cap() { assertCase("D15_map_beyond_page_cap") }
    @Test func D16_map_private() { assertCase("D16_map_private") }
    @Test func D17_eaccept_accepted_page() { assertCase("D17_eaccept_accepted_page") }
    @Test func D18_eaccept_without_pending_or_pr() { assertCase("D18_eaccept_without_pending_or_pr") }
    @Test func D19_eaccept_pr_wrong_permissions() { assertCase("D19_eaccept_pr_wrong_permissions") }
    @Test func D20_emodpe_execute() { assertCase("D20_emodpe_execute") }
    @Test func D21_access_removed_page() { assertCase("D21_access_removed_page") }
    @Test func D22_untrusted_access_before_einit() { assertCase("D22_untrusted_access_before_einit") }
    @Test func D23_sgx1_cpu_no_eaug() { assertCase("D23_sgx1_cpu_no_eaug") }

    // Injected faults
    @Test func F1_load_ebusy_eagain() { assertCase("F1_load_ebusy_eagain") }
    @Test func F2_reclaimer_holds_page() { assertCase("F2_reclaimer_holds_page") }
    @Test func F3_eaug_sigbus() { assertCase("F3_eaug_sigbus") }
    @Test func F4_epc_page_conflict() { assertCase("F4_epc_page_conflict") }

    // EACCEPTCOPY, ECREATE, instruction fetch, SECS and VA pages
    @Test func C1_eacceptcopy_initializes_a_pending_page() { assertCase("C1_eacceptcopy_initializes_a_pending_page") }
    @Test func C2_eacceptcopy_unreadable_source() { assertCase("C2_eacceptcopy_unreadable_source") }
    @Test func C3_eacceptcopy_read_only_destination() { assertCase("C3_eacceptcopy_read_only_destination") }
    @Test func C4_eacceptcopy_operand_order() { assertCase("C4_eacceptcopy_operand_order") }
    @Test func C5_eacceptcopy_ignores_pending_modified_pr() { assertCase("C5_eacceptcopy_ignores_pending_modified_pr") }
    @Test func P1_ecreate_one_page() { assertCase("P1_ecreate_one_page") }
    @Test func P2_fetch_without_vm_exec() { assertCase("P2_fetch_without_vm_exec") }
    @Test func E1_va_pages_outlive_removal() { assertCase("E1_va_pages_outlive_removal") }
    @Test func E2_secs_written_back_with_last_page() { assertCase("E2_secs_written_back_with_last_page") }

    // What the kernel's selftests need through c/kselftest
    @Test func K1_create_checks_the_secs() { assertCase("K1_create_checks_the_secs") }
    @Test func K2_init_checks_the_sigstruct() { assertCase("K2_init_checks_the_sigstruct") }
    @Test func K3_enclu_reads_secinfo_from_enclave_memory() { assertCase("K3_enclu_reads_secinfo_from_enclave_memory") }
    @Test func K4_tcs_entry_and_exit() { assertCase("K4_tcs_entry_and_exit") }
    @Test func K5_probe_grants_vma_and_epcm() { assertCase("K5_probe_grants_vma_and_epcm") }
    @Test func K6_cpuid_leaf_0x12() { assertCase("K6_cpuid_leaf_0x12") }
}
