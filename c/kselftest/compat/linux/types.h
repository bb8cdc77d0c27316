/* <linux/types.h> plus the kernel-internal short type names (u8 ... u64) the SGX headers use,
 * which the system's uapi header does not define. Our own definitions. */
#ifndef EDMM_KS_COMPAT_LINUX_TYPES_H
#define EDMM_KS_COMPAT_LINUX_TYPES_H

#include_next <linux/types.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s8 s8;
typedef __s16 s16;
typedef __s32 s32;
typedef __s64 s64;

#endif
