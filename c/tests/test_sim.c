/* libedmm_sim as a harness that runs enclave code natively uses it (c/kselftest does, for the
 * kernel's SGX selftests): the simulated /dev/sgx_enclave (the ioctls before CREATE, CREATE
 * with a SECS turning the descriptor into the enclave's, INIT with a SIGSTRUCT), CPUID leaf
 * 0x12, the on-demand native mapping (what a page opens to natively, and when it closes), the
 * TCS side of EENTER, ERESUME, EEXIT and AEX, and ENCLU with its registers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "edmm/edmm_sim.h"

#define PAGE 4096ull
#define ENCLAVE_SIZE (16 * PAGE)

/* The protection of the mapping at `address` in /proc/self/maps ("rw-s"), or "" if none. */
static const char *native_prot(uint64_t address) {
    static char prot[5];
    prot[0] = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return prot;
    char line[512];
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && address >= lo && address < hi) {
            memcpy(prot, p, sizeof prot);
            break;
        }
    }
    fclose(maps);
    return prot;
}

/* The SECS load.c passes: 64-bit, XFRM x87|SSE, one SSA page. */
static void fill_secs(uint8_t *secs, uint64_t base, uint64_t size) {
    memset(secs, 0, 4096);
    uint32_t ssa = 1;
    uint64_t attributes = 4, xfrm = 3;
    memcpy(secs, &size, 8);
    memcpy(secs + 8, &base, 8);
    memcpy(secs + 16, &ssa, 4);
    memcpy(secs + 48, &attributes, 8);
    memcpy(secs + 56, &xfrm, 8);
}

static void cpuid(int machine) {
    uint32_t r[4];
    CHECK_RC(edmm_sim_cpuid(machine, 0, r), 0);
    CHECK(r[0] == 3, "sub-leaf 0 EAX = %#x, expected SGX1|SGX2", r[0]);
    CHECK_RC(edmm_sim_cpuid(machine, 2, r), 0);
    CHECK(r[0] % 16 == 1 && ((r[2] & 0xfffff000u) | (uint64_t)(r[3] & 0xfffffu) << 32) == 256 * PAGE,
          "sub-leaf 2: type %u, size %#x", r[0] % 16, r[2]);
    CHECK_RC(edmm_sim_cpuid(machine, 3, r), 0);
    CHECK(r[0] % 16 == 0, "sub-leaf 3 is the end of the list");
    CHECK_RC(edmm_sim_cpuid(-1, 0, r), -EBADF);
}

/* Opens a device, checks what it answers before CREATE, and creates an enclave on it at
 * `base`. Returns the descriptor, the enclave's from then on. */
static int create_enclave(int machine, uint64_t base) {
    int fd = -1;
    CHECK_RC(edmm_sim_device_open(machine, O_CLOEXEC, &fd), 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "O_CLOEXEC kept");
    struct edmm_sim_add_pages add = {0};
    struct edmm_sim_modify_types modify = {0};
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_ADD_PAGES, &add), -EINVAL);
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_MODIFY_TYPES, &modify), -EINVAL);
    CHECK_RC(edmm_sim_ioctl(fd, 0xA4FFul, &add), -ENOTTY);
    CHECK_RC(edmm_sim_mmap(fd, base, PAGE, EDMM_SIM_PROT_READ, EDMM_SIM_MAP_ON_DEMAND), 0);

    static uint8_t secs[4096];
    struct edmm_sim_create create = {1};
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_CREATE, &create), -EFAULT);
    create.src = (uint64_t)(uintptr_t)secs;
    fill_secs(secs, base, 3 * PAGE * 4);
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_CREATE, &create), -EINVAL);
    fill_secs(secs, base, PAGE);
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_CREATE, &create), -EIO);
    fill_secs(secs, base, ENCLAVE_SIZE);
    int number = fd;
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_CREATE, &create), 0);
    CHECK(fd == number && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "the same descriptor, still close-on-exec");
    struct edmm_sim_enclave_info info;
    CHECK_RC(edmm_sim_enclave_info(fd, &info), 0);
    CHECK(info.base == base && info.size == ENCLAVE_SIZE && !info.initialized, "ELRANGE from the SECS");
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_CREATE, &create), -EINVAL);
    return fd;
}

/* EADD: a TCS (OENTRY at the text page, OSSA at page 3), an RX text page, two RW pages; INIT. */
static void build(int fd) {
    static uint8_t tcs[4096] __attribute__((aligned(4096))), zeros[3 * 4096] __attribute__((aligned(4096)));
    memset(tcs, 0, sizeof tcs);
    uint64_t ossa = 3 * PAGE, oentry = PAGE + 0x40;
    uint32_t nssa = 1, limit = 0xffffffffu;
    memcpy(tcs + 16, &ossa, 8);
    memcpy(tcs + 28, &nssa, 4);
    memcpy(tcs + 32, &oentry, 8);
    memcpy(tcs + 64, &limit, 4);
    memcpy(tcs + 68, &limit, 4);
    struct { uint64_t flags; uint8_t reserved[56]; } __attribute__((aligned(64))) secinfo = {0x100, {0}};
    struct edmm_sim_add_pages add = {(uint64_t)(uintptr_t)tcs, 0, PAGE, (uint64_t)(uintptr_t)&secinfo, 0, 0};
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_ADD_PAGES, &add), 0);
    secinfo.flags = 0x205; /* REG R-X */
    add = (struct edmm_sim_add_pages){(uint64_t)(uintptr_t)zeros, PAGE, PAGE, (uint64_t)(uintptr_t)&secinfo, 0, 0};
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_ADD_PAGES, &add), 0);
    secinfo.flags = 0x203; /* REG RW- */
    add = (struct edmm_sim_add_pages){(uint64_t)(uintptr_t)zeros, 2 * PAGE, 2 * PAGE, (uint64_t)(uintptr_t)&secinfo, 0, 0};
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_ADD_PAGES, &add), 0);

    static uint8_t sigstruct[1808];
    struct edmm_sim_init init = {(uint64_t)(uintptr_t)sigstruct};
    uint32_t vendor = 0x1234;
    memcpy(sigstruct + 16, &vendor, 4);
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_INIT, &init), -EINVAL);
    vendor = 0x8086;
    memcpy(sigstruct + 16, &vendor, 4);
    init.sigstruct = 8;
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_INIT, &init), -EFAULT);
    init.sigstruct = (uint64_t)(uintptr_t)sigstruct;
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_INIT, &init), 0);
    CHECK_RC(edmm_sim_ioctl(fd, EDMM_SIM_IOC_INIT, &init), -EINVAL);
}

static void on_demand(int fd, uint64_t base) {
    uint64_t tcs = base, text = base + PAGE, data = base + 2 * PAGE;
    CHECK_RC(edmm_sim_mmap(fd, tcs, PAGE, EDMM_SIM_PROT_READ | EDMM_SIM_PROT_WRITE, EDMM_SIM_MAP_ON_DEMAND | EDMM_SIM_MAP_PRIVATE), -EINVAL);
    CHECK_RC(edmm_sim_mmap(fd, tcs, PAGE, 3, EDMM_SIM_MAP_ON_DEMAND | EDMM_SIM_MAP_CONTENTS), -EINVAL);
    CHECK_RC(edmm_sim_mmap(fd, tcs, PAGE, 3, EDMM_SIM_MAP_ON_DEMAND), 0);
    CHECK_RC(edmm_sim_mmap(fd, text, PAGE, 5, EDMM_SIM_MAP_ON_DEMAND), 0);
    CHECK_RC(edmm_sim_mmap(fd, data, 2 * PAGE, 3, EDMM_SIM_MAP_ON_DEMAND), 0);
    CHECK(strcmp(native_prot(data), "---s") == 0, "mapped with no access: %s", native_prot(data));

    struct edmm_enclu_fault fault = {0};
    CHECK_RC(edmm_sim_native_fault(fd, data + 8, EDMM_SIM_PROT_READ, &fault), 0);
    CHECK(strcmp(native_prot(data), "rw-s") == 0, "data opened to VMA and EPCM RW: %s", native_prot(data));
    CHECK_RC(edmm_sim_native_fault(fd, text, EDMM_SIM_PROT_EXEC, &fault), 0);
    CHECK(strcmp(native_prot(text), "r-xs") == 0, "text opened to R-X: %s", native_prot(text));
    CHECK_RC(edmm_sim_native_fault(fd, text, EDMM_SIM_PROT_WRITE, &fault), EDMM_ENCLU_FAULTED);
    CHECK(fault.vector == 14 && fault.error_code == 0x7 && fault.address == text, "write to the text: #PF %#x", fault.error_code);
    CHECK_RC(edmm_sim_native_fault(fd, tcs + 16, EDMM_SIM_PROT_READ, &fault), EDMM_ENCLU_FAULTED);
    CHECK(fault.error_code == 0x8005 && fault.address == tcs, "read of the TCS: #PF %#x", fault.error_code);
    CHECK_RC(edmm_sim_native_fault(fd, data, 8, &fault), -EINVAL);

    /* A change through the library closes what it may affect. */
    CHECK_RC(edmm_sim_mprotect(fd, data, PAGE, EDMM_SIM_PROT_READ), 0);
    CHECK(strcmp(native_prot(data), "---s") == 0, "mprotect closed it: %s", native_prot(data));
    CHECK_RC(edmm_sim_native_fault(fd, data, EDMM_SIM_PROT_READ, &fault), 0);
    CHECK(strcmp(native_prot(data), "r--s") == 0, "opened to the read-only VMA: %s", native_prot(data));
    CHECK_RC(edmm_sim_mprotect(fd, data, PAGE, 3), 0);
    CHECK_RC(edmm_sim_native_flush(fd), 0);
    CHECK(strcmp(native_prot(text), "---s") == 0, "flushed: %s", native_prot(text));
}

static void tcs_and_enclu(int fd, uint64_t base) {
    uint64_t tcs = base, data = base + 2 * PAGE;
    struct edmm_sim_tcs_entry entry = {0};
    struct edmm_enclu_fault fault = {0};
    CHECK_RC(edmm_sim_tcs_enter(fd, tcs, 4, &entry, &fault), -EINVAL);
    CHECK_RC(edmm_sim_tcs_enter(fd, tcs, 3, &entry, &fault), EDMM_ENCLU_FAULTED);
    CHECK(fault.vector == 13, "ERESUME with CSSA 0 is #GP");
    CHECK_RC(edmm_sim_tcs_enter(fd, tcs, 2, &entry, &fault), 0);
    CHECK(entry.entry == base + PAGE + 0x40 && entry.ssa == base + 3 * PAGE && entry.cssa == 0 && entry.nssa == 1,
          "EENTER: entry %#llx ssa %#llx cssa %u", (unsigned long long)entry.entry, (unsigned long long)entry.ssa, entry.cssa);
    CHECK_RC(edmm_sim_tcs_enter(fd, tcs, 2, &entry, &fault), EDMM_ENCLU_FAULTED);
    CHECK(fault.vector == 13, "EENTER of an active TCS is #GP");

    /* Inside: a SECINFO on the data page, written as the enclave writes it. */
    CHECK_RC(edmm_sim_native_fault(fd, data, EDMM_SIM_PROT_WRITE, &fault), 0);
    CHECK_RC(edmm_sim_write(fd, data + 64, 0x4 /* X */, &fault), 0);
    CHECK_RC(edmm_sim_enclu_exec(fd, 6, data + 64, data, 0, &fault), 0);
    struct edmm_sim_page page;
    CHECK_RC(edmm_sim_page(fd, 2 * PAGE, &page), 0);
    CHECK(page.permissions == 7, "EMODPE(X): permissions %u", page.permissions);
    CHECK(strcmp(native_prot(data), "---s") == 0, "the EPCM change closed the page: %s", native_prot(data));
    CHECK_RC(edmm_sim_enclu_exec(fd, 6, data + 72, data, 0, &fault), EDMM_ENCLU_FAULTED);
    CHECK(fault.vector == 13, "a misaligned SECINFO is #GP");
    CHECK_RC(edmm_sim_enclu_exec(fd, 9, data + 64, data, 0, &fault), EDMM_ENCLU_FAULTED);
    CHECK_RC(edmm_sim_enclu_exec(fd, 0, data + 64, data, 0, &fault), -ENOSYS);

    /* An AEX pushes SSA frame 0 and closes the native pages; ERESUME pops it. */
    CHECK_RC(edmm_sim_native_fault(fd, data, EDMM_SIM_PROT_READ, &fault), 0);
    struct edmm_enclu_fault exception = {14, 0x8007, data};
    CHECK_RC(edmm_sim_tcs_exit(fd, tcs, &exception), 0);
    CHECK(strcmp(native_prot(data), "---s") == 0, "an AEX flushes: %s", native_prot(data));
    CHECK_RC(edmm_sim_tcs_enter(fd, tcs, 2, &entry, &fault), EDMM_ENCLU_FAULTED);
    CHECK(fault.vector == 13, "EENTER with CSSA == NSSA is #GP");
    CHECK_RC(edmm_sim_tcs_enter(fd, tcs, 3, &entry, &fault), 0);
    CHECK(entry.cssa == 0, "ERESUME resumes frame 0");
    CHECK_RC(edmm_sim_tcs_exit(fd, tcs, NULL), 0);
    CHECK_RC(edmm_sim_tcs_exit(fd, tcs, NULL), -EINVAL);
    CHECK_RC(edmm_sim_tcs_exit(fd, tcs, &exception), -EINVAL);
    CHECK_RC(edmm_sim_tcs_exit(fd, base + ENCLAVE_SIZE, NULL), -EINVAL);
    CHECK_RC(edmm_sim_tcs_enter(fd, data, 2, &entry, &fault), EDMM_ENCLU_FAULTED);
    CHECK(fault.vector == 14 && fault.error_code == 0x8005, "EENTER of a REG page: #PF %#x", fault.error_code);
}

int main(void) {
    int machine = -1;
    CHECK_RC(edmm_sim_machine_create(256, &machine), 0);
    cpuid(machine);

    /* An ELRANGE-aligned address range of our own for the native mappings. */
    uint8_t *area = mmap(NULL, 2 * ENCLAVE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(area != MAP_FAILED, "reserve");
    uint64_t base = ((uint64_t)(uintptr_t)area + ENCLAVE_SIZE - 1) & ~(ENCLAVE_SIZE - 1);

    int fd = create_enclave(machine, base);
    build(fd);
    on_demand(fd, base);
    tcs_and_enclu(fd, base);
    CHECK_RC(edmm_sim_munmap(fd, base, ENCLAVE_SIZE), 0);
    CHECK_RC(edmm_sim_enclave_close(fd), 0);
    close(fd);

    /* A device closed before CREATE is forgotten. */
    int device = -1;
    CHECK_RC(edmm_sim_device_open(machine, 0, &device), 0);
    CHECK(!(fcntl(device, F_GETFD) & FD_CLOEXEC), "no O_CLOEXEC asked");
    CHECK_RC(edmm_sim_enclave_close(device), 0);
    struct edmm_sim_modify_types modify = {0};
    CHECK_RC(edmm_sim_ioctl(device, EDMM_SIM_IOC_MODIFY_TYPES, &modify), -EBADF);
    close(device);
    CHECK_RC(edmm_sim_device_open(machine, O_NONBLOCK, &device), -EINVAL);
    return check_summary("test_sim");
}
