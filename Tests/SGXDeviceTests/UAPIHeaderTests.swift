import CEDMMShims
import Testing

/// The numbers and sizes come from the kernel's <asm/sgx.h> through the C shim; these are the
/// values of the Linux uapi (_IOWR(0xA4, nr, struct)).
@Suite struct UAPIHeaderTests {
    @Test func restrictPermissionsIoctlNumberIs0xC028A405() {
        #expect(edmm_sgx_ioc_restrict_permissions() == 0xC028_A405)
    }

    @Test func modifyTypesIoctlNumberIs0xC028A406() {
        #expect(edmm_sgx_ioc_modify_types() == 0xC028_A406)
    }

    @Test func removePagesIoctlNumberIs0xC018A407() {
        #expect(edmm_sgx_ioc_remove_pages() == 0xC018_A407)
    }

    @Test func kernelStructSizesAre40And40And24Bytes() {
        #expect(edmm_sgx_restrict_permissions_size() == 40)
        #expect(edmm_sgx_modify_types_size() == 40)
        #expect(edmm_sgx_remove_pages_size() == 24)
    }

    @Test func ioctlNumbersEncodeTheirStructSizes() {
        // _IOC_SIZE is bits 16..29 of the number.
        #expect((edmm_sgx_ioc_restrict_permissions() >> 16) & 0x3FFF == UInt(edmm_sgx_restrict_permissions_size()))
        #expect((edmm_sgx_ioc_modify_types() >> 16) & 0x3FFF == UInt(edmm_sgx_modify_types_size()))
        #expect((edmm_sgx_ioc_remove_pages() >> 16) & 0x3FFF == UInt(edmm_sgx_remove_pages_size()))
    }
}
