/* __vdso_sgx_enter_enclave for the synthetic vDSO, written from the ABI that
 * arch/x86/include/uapi/asm/sgx.h documents (vdso_sgx_enter_enclave_t, struct sgx_enclave_run):
 *
 *   int enter(rdi, rsi, rdx, unsigned int function, r8, r9, struct sgx_enclave_run *run)
 *
 * RDI, RSI, RDX, R8, R9 (and every other register but RAX, RBX, RCX) reach the enclave as they
 * are; RBP anchors the frame. `function` must be EENTER (2) or ERESUME (3) and the reserved
 * bytes of `run` zero, else -EINVAL. One ENCLU serves as EENTER/ERESUME and as the AEP. On
 * EEXIT `run->function` = EEXIT; on an exception (reported at the exception entry with the leaf
 * in EAX, vector in EDI, error code in ESI, address in RDX) the leaf and the exception. Then
 * `run->user_handler`, if set, is called as handler(rdi, rsi, rdx, rsp at exit, r8, r9, run): a
 * result <= 0 is returned, a result > 0 is the leaf to run next.
 *
 * This code is copied into the synthetic vDSO image (vdso.c), so it must not refer to anything
 * outside [edmm_ks_vdso_text_start, edmm_ks_vdso_text_end). ENCLU raises SIGILL on this
 * machine; cpu.c emulates it. */

#define RUN_TCS 0
#define RUN_FUNCTION 8
#define RUN_EXCEPTION_VECTOR 12
#define RUN_EXCEPTION_ERROR_CODE 14
#define RUN_EXCEPTION_ADDR 16
#define RUN_USER_HANDLER 24
#define RUN_RESERVED 40
#define RUN_SIZE 256
/* The run argument: the 7th, above the saved RBP and the return address. */
#define RUN_ARG 16
#define EINVAL 22

	.section .text.edmm_ks_vdso, "ax", @progbits
	.globl edmm_ks_vdso_text_start, edmm_ks_vdso_text_end
	.globl edmm_ks_vdso_enter, edmm_ks_vdso_aep, edmm_ks_vdso_exception
	.hidden edmm_ks_vdso_text_start, edmm_ks_vdso_text_end
	.hidden edmm_ks_vdso_enter, edmm_ks_vdso_aep, edmm_ks_vdso_exception

edmm_ks_vdso_text_start:
	.type edmm_ks_vdso_enter, @function
edmm_ks_vdso_enter:
	.cfi_startproc
	push	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	mov	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	push	%rbx
	.cfi_offset %rbx, -24
	mov	%ecx, %eax

.Lleaf_in_eax:
	cmp	$2, %eax
	jb	.Leinval
	cmp	$3, %eax
	ja	.Leinval
	/* Only RAX, RBX and RCX are ours to use before ENCLU. */
	mov	RUN_ARG(%rbp), %rbx
	mov	$RUN_RESERVED, %ecx
.Lcheck_reserved:
	cmpq	$0, (%rbx, %rcx)
	jne	.Leinval
	add	$8, %rcx
	cmp	$RUN_SIZE, %rcx
	jb	.Lcheck_reserved
	mov	RUN_TCS(%rbx), %rbx
	lea	edmm_ks_vdso_aep(%rip), %rcx
edmm_ks_vdso_aep:
	.byte	0x0f, 0x01, 0xd7	/* ENCLU: EENTER or ERESUME, RBX = TCS, RCX = AEP */

	/* EEXIT lands here: the enclave jumps to the RCX EENTER gave it. */
	mov	RUN_ARG(%rbp), %rbx
	movl	$4, RUN_FUNCTION(%rbx)

.Lexited:
	cmpq	$0, RUN_USER_HANDLER(%rbx)
	jne	.Lcall_handler
	xor	%eax, %eax
.Lreturn:
	/* The enclave may have moved RSP; RBP still anchors the frame. */
	mov	-8(%rbp), %rbx
	leave
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_def_cfa %rbp, 16

.Leinval:
	mov	$-EINVAL, %eax
	jmp	.Lreturn

edmm_ks_vdso_exception:
	mov	RUN_ARG(%rbp), %rbx
	mov	%eax, RUN_FUNCTION(%rbx)
	mov	%di, RUN_EXCEPTION_VECTOR(%rbx)
	mov	%si, RUN_EXCEPTION_ERROR_CODE(%rbx)
	mov	%rdx, RUN_EXCEPTION_ADDR(%rbx)
	jmp	.Lexited

.Lcall_handler:
	/* handler(rdi, rsi, rdx, rsp at exit, r8, r9, run) with RSP 16-byte aligned at the call. */
	mov	%rsp, %rcx
	mov	%rbx, %rax
	mov	%rsp, %rbx
	and	$15, %rbx		/* RBX (callee-saved) keeps the misalignment to undo */
	and	$-16, %rsp
	push	%rax			/* padding */
	push	%rax			/* run: the 7th argument */
	cld
	call	*RUN_USER_HANDLER(%rax)
	lea	16(%rsp, %rbx), %rsp
	test	%eax, %eax
	jle	.Lreturn
	jmp	.Lleaf_in_eax
	.cfi_endproc
	.size edmm_ks_vdso_enter, . - edmm_ks_vdso_enter
edmm_ks_vdso_text_end:

	.section .note.GNU-stack, "", @progbits
