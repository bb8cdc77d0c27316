/* The "done when" check of the libedmm issue, built against the staged install only:
 *   cc install_check.c $(pkg-config --cflags --libs edmm)
 * opens a connection to edmmd --simulate, gets the machine descriptor, creates a simulated
 * enclave, registers it, allocates and frees, and reports a refused descriptor with a readable
 * edmm_strerror. Usage: install_check SOCKET */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <edmm/edmm.h>
#include <edmm/edmm_sim.h>

int main(int argc, char **argv) {
    struct edmm *h;
    int rc = edmm_open(&h, argc > 1 ? argv[1] : NULL, "install-check");
    if (rc) {
        fprintf(stderr, "open: %s\n", edmm_strerror(rc));
        return 1;
    }
    int machine = edmm_machine_fd(h), enclave_fd = -1;
    const uint64_t base = 1ull << 45, size = 1ull << 24;
    if (machine < 0 || (rc = edmm_sim_enclave_create(machine, base, size, &enclave_fd)) != 0) {
        fprintf(stderr, "no simulated enclave: machine %d, rc %d\n", machine, rc);
        return 1;
    }
    uint64_t enclave = 0;
    if ((rc = edmm_register(h, enclave_fd, base, size, "install-check", &enclave)) != 0) {
        fprintf(stderr, "register: %s\n", edmm_strerror(rc));
        return 1;
    }
    struct edmm_grant g;
    /* Page 0 and 1 hold the TCS and data page: allocate above them. */
    if ((rc = edmm_allocate(h, enclave, 1ull << 20, 4 * 4096, EDMM_PERM_RW, &g)) != 0 ||
        (rc = edmm_free(h, enclave, g.granted.offset, g.granted.length, 0)) != 0) {
        fprintf(stderr, "allocate/free: %s\n", edmm_strerror(rc));
        return 1;
    }
    printf("registered enclave %llu, allocated and freed [0x%llx, +0x%llx)\n", (unsigned long long)enclave,
           (unsigned long long)g.granted.offset, (unsigned long long)g.granted.length);
    edmm_grant_release(&g);
    int devnull = open("/dev/null", O_RDWR);
    rc = edmm_register(h, devnull, base, size, "not-an-enclave", &enclave);
    struct edmm_error e;
    edmm_last_error(&e);
    printf("registering /dev/null: %s (edmmd: %s)\n", edmm_strerror(rc), e.message);
    edmm_close(h);
    return rc == EDMM_E_BAD_DESCRIPTOR ? 0 : 1;
}
