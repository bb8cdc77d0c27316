/* The bit helpers the kernel's SGX headers expect from <linux/bits.h> (the kernel builds its
 * selftests with -I tools/include, which we do not extract). Our own definitions. */
#ifndef EDMM_KS_COMPAT_LINUX_BITS_H
#define EDMM_KS_COMPAT_LINUX_BITS_H

#define BIT(n) (1UL << (n))
#define BIT_ULL(n) (1ULL << (n))
/* Bits h..l set, h >= l. */
#define GENMASK(h, l) ((~0UL >> (63 - (h))) & (~0UL << (l)))
#define GENMASK_ULL(h, l) ((~0ULL >> (63 - (h))) & (~0ULL << (l)))

#endif
