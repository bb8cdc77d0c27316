/* The synthetic vDSO. This machine's vDSO has no __vdso_sgx_enter_enclave, and the selftests
 * find it as a program finds any vDSO symbol: getauxval(AT_SYSINFO_EHDR) gives the image, its
 * PT_DYNAMIC names DT_SYMTAB, DT_STRTAB and a SysV DT_HASH, and the symbol's st_value is an
 * offset into the image. So the image is one page of this process, mapped read+execute: an ELF
 * header, the program headers, the dynamic table, the symbol, string and hash tables, and a copy
 * of the code of vdso_enter.S. */
#define _GNU_SOURCE
#include <elf.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "ks.h"

extern const char edmm_ks_vdso_text_start[], edmm_ks_vdso_text_end[];
extern const char edmm_ks_vdso_enter[], edmm_ks_vdso_aep[], edmm_ks_vdso_exception[];

#define KS_VDSO_SYMBOL "__vdso_sgx_enter_enclave"
#define KS_VDSO_SIZE 4096

struct ks_vdso_tables {
    Elf64_Ehdr ehdr;
    Elf64_Phdr phdr[2]; /* PT_LOAD (the page), PT_DYNAMIC */
    Elf64_Dyn dynamic[6];
    Elf64_Sym symbols[2]; /* STN_UNDEF, the function */
    Elf64_Word hash[2 + 1 + 2]; /* nbucket 1, nchain 2, bucket[1], chain[2] */
    char strings[sizeof("\0" KS_VDSO_SYMBOL "\0linux-vdso.so.1")];
};
/* The code starts at a 64-byte boundary after the tables. */
#define KS_VDSO_CODE_OFFSET ((sizeof(struct ks_vdso_tables) + 63) & ~(size_t)63)

static unsigned char *image;
static pthread_once_t image_once = PTHREAD_ONCE_INIT;

static uintptr_t code_offset(const char *label) {
    return KS_VDSO_CODE_OFFSET + (uintptr_t)(label - edmm_ks_vdso_text_start);
}

static void build_image(void) {
    size_t code = (size_t)(edmm_ks_vdso_text_end - edmm_ks_vdso_text_start);
    if (KS_VDSO_CODE_OFFSET + code > KS_VDSO_SIZE) ks_die("the vDSO code does not fit its page", (long)code);
    unsigned char *page = mmap(NULL, KS_VDSO_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) ks_die("cannot map the vDSO image", 0);

    struct ks_vdso_tables *t = (struct ks_vdso_tables *)page;
    memcpy(t->ehdr.e_ident, ELFMAG, SELFMAG);
    t->ehdr.e_ident[EI_CLASS] = ELFCLASS64;
    t->ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
    t->ehdr.e_ident[EI_VERSION] = EV_CURRENT;
    t->ehdr.e_ident[EI_OSABI] = ELFOSABI_SYSV;
    t->ehdr.e_type = ET_DYN;
    t->ehdr.e_machine = EM_X86_64;
    t->ehdr.e_version = EV_CURRENT;
    t->ehdr.e_phoff = offsetof(struct ks_vdso_tables, phdr);
    t->ehdr.e_ehsize = sizeof(Elf64_Ehdr);
    t->ehdr.e_phentsize = sizeof(Elf64_Phdr);
    t->ehdr.e_phnum = 2;
    t->ehdr.e_shentsize = sizeof(Elf64_Shdr);

    t->phdr[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_filesz = KS_VDSO_SIZE, .p_memsz = KS_VDSO_SIZE,
                              .p_align = KS_VDSO_SIZE};
    size_t dyn = offsetof(struct ks_vdso_tables, dynamic);
    t->phdr[1] = (Elf64_Phdr){.p_type = PT_DYNAMIC, .p_flags = PF_R, .p_offset = dyn, .p_vaddr = dyn, .p_paddr = dyn,
                              .p_filesz = sizeof(t->dynamic), .p_memsz = sizeof(t->dynamic), .p_align = 8};

    /* The image is linked at 0, like the kernel's: every address in it is an offset. */
    t->dynamic[0] = (Elf64_Dyn){.d_tag = DT_HASH, .d_un.d_ptr = offsetof(struct ks_vdso_tables, hash)};
    t->dynamic[1] = (Elf64_Dyn){.d_tag = DT_STRTAB, .d_un.d_ptr = offsetof(struct ks_vdso_tables, strings)};
    t->dynamic[2] = (Elf64_Dyn){.d_tag = DT_SYMTAB, .d_un.d_ptr = offsetof(struct ks_vdso_tables, symbols)};
    t->dynamic[3] = (Elf64_Dyn){.d_tag = DT_STRSZ, .d_un.d_val = sizeof(t->strings)};
    t->dynamic[4] = (Elf64_Dyn){.d_tag = DT_SYMENT, .d_un.d_val = sizeof(Elf64_Sym)};
    t->dynamic[5] = (Elf64_Dyn){.d_tag = DT_NULL};

    memcpy(t->strings, "\0" KS_VDSO_SYMBOL "\0linux-vdso.so.1", sizeof(t->strings));
    t->symbols[1] = (Elf64_Sym){.st_name = 1, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC), .st_shndx = 1,
                                .st_value = code_offset(edmm_ks_vdso_enter),
                                .st_size = (Elf64_Xword)(edmm_ks_vdso_text_end - edmm_ks_vdso_enter)};
    /* One bucket: the chain starts at symbol 1 and ends there, whatever the name's hash. */
    t->hash[0] = 1;
    t->hash[1] = 2;
    t->hash[2] = 1;
    t->hash[3] = STN_UNDEF;
    t->hash[4] = STN_UNDEF;

    memcpy(page + KS_VDSO_CODE_OFFSET, edmm_ks_vdso_text_start, code);
    if (mprotect(page, KS_VDSO_SIZE, PROT_READ | PROT_EXEC) != 0) ks_die("cannot seal the vDSO image", 0);
    image = page;
}

const void *ks_vdso_image(void) {
    pthread_once(&image_once, build_image);
    return image;
}

uintptr_t ks_vdso_aep(void) { return (uintptr_t)ks_vdso_image() + code_offset(edmm_ks_vdso_aep); }

uintptr_t ks_vdso_exception_entry(void) { return (uintptr_t)ks_vdso_image() + code_offset(edmm_ks_vdso_exception); }

unsigned long __real_getauxval(unsigned long type);
unsigned long __wrap_getauxval(unsigned long type);

unsigned long __wrap_getauxval(unsigned long type) {
    if (type != AT_SYSINFO_EHDR) return __real_getauxval(type);
    /* Whoever looks the vDSO up is about to enter an enclave. */
    ks_cpu_init();
    return (unsigned long)ks_vdso_image();
}
