/* The fast path, for scripts/test-c.sh to trace with strace: 100 synchronous calls on one
 * connection, between two marker writes. Each call must cost exactly one sendmsg and one
 * recvmsg (no poll, no futex, no other thread). Usage: test_fastpath SOCKET */
#include <stdio.h>
#include <unistd.h>

#include "edmm/edmm.h"

int main(int argc, char **argv) {
    struct edmm *h;
    if (argc != 2 || edmm_open(&h, argv[1], "fast-path") != 0) return 1;
    struct edmm_status *s = NULL;
    edmm_status(h, &s); /* warm up */
    edmm_release(s);
    if (write(2, "BEGIN\n", 6) != 6) return 1;
    int failures = 0;
    for (int i = 0; i < 100; i++) {
        failures += edmm_status(h, &s) != 0;
        edmm_release(s);
    }
    if (write(2, "END\n", 4) != 4) return 1;
    edmm_close(h);
    return failures != 0;
}
