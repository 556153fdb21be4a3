// cpu.c: the CPU state of a process frozen while it RUNS in user space:
// general-purpose registers, ymm0-15 (xmm0-15 without AVX), the x87 stack
// and control word, MXCSR (round-toward-zero) and the TLS base (fs_base).
// build:
//
// Why it matters: a process that is not in a syscall has every register
// live. The restorer must put back all of them -- including the upper
// halves of the ymm registers (XSAVE state), the x87 stack, the rounding
// modes and fs_base, without which every __thread access and every stack
// protector check crashes.
//
// An inline-asm loop loads distinct patterns into rbx rcx rbp rsi r8-r15,
// ymm0-15 and two x87 registers, then spins (rax/rdx are its scratch) until
// the SIGUSR2 handler sets a flag in memory; then it stores all of them and
// C code compares. The kernel saves and restores the registers around the
// handler, so the handler does not disturb them. The spin has its own
// 60 s timeout measured with rdtsc (calibrated at start).
//
// Usage: cpu PIDFILE
// WL_CPU_NO_AVX=1 forces the xmm-only variant (to test it on AVX machines).
// WL_SABOTAGE=1: the SIGUSR2 handler corrupts r12 and xmm0 in the saved
// signal context (as a broken restore would); "gpr" and "ymm"/"xmm" FAIL.
#include "wl.h"
#include <stddef.h>
#include <asm/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>

struct cpu_ctx {
	unsigned char vin[16][32];	/*    0 */
	unsigned char vout[16][32];	/*  512 */
	uint64_t gin[12];		/* 1024: rbx rcx rbp rsi r8..r15 */
	uint64_t gout[12];		/* 1120 */
	long double xin[2];		/* 1216 */
	long double xout[2];		/* 1248 */
	uint16_t fcw_in;		/* 1280 */
	uint16_t fcw_out;		/* 1282 */
	uint32_t mxcsr_out;		/* 1284 */
	uint64_t tsc_deadline;		/* 1288 */
	volatile uint32_t flag;		/* 1296 */
	uint32_t timed_out;		/* 1300 */
	uint64_t saved_rbp;		/* 1304 */
};
_Static_assert(offsetof(struct cpu_ctx, vout) == 512, "layout");
_Static_assert(offsetof(struct cpu_ctx, gin) == 1024, "layout");
_Static_assert(offsetof(struct cpu_ctx, gout) == 1120, "layout");
_Static_assert(offsetof(struct cpu_ctx, xin) == 1216, "layout");
_Static_assert(offsetof(struct cpu_ctx, xout) == 1248, "layout");
_Static_assert(offsetof(struct cpu_ctx, fcw_in) == 1280, "layout");
_Static_assert(offsetof(struct cpu_ctx, mxcsr_out) == 1284, "layout");
_Static_assert(offsetof(struct cpu_ctx, tsc_deadline) == 1288, "layout");
_Static_assert(offsetof(struct cpu_ctx, flag) == 1296, "layout");
_Static_assert(offsetof(struct cpu_ctx, saved_rbp) == 1304, "layout");

static struct cpu_ctx ctx __attribute__((aligned(64)));
static const char *gpr_names[12] = { "rbx", "rcx", "rbp", "rsi", "r8", "r9",
				     "r10", "r11", "r12", "r13", "r14", "r15" };
static __thread uint64_t tls_pat[512]; /* 4 KiB of TLS with a pattern */
static int sabotage;

#define MXCSR_RZ 0x7f80 /* all exceptions masked, rounding = toward zero */
#define FCW_RZ 0x0f7f   /* x87: 64-bit precision, rounding = toward zero */

/* The register-loading spin loop. rdi = &ctx throughout. */
#define LOAD_GPRS                                                       \
	"movq %%rbp, 1304(%%rdi)\n\t"                                   \
	"movq 1024(%%rdi), %%rbx\n\t movq 1032(%%rdi), %%rcx\n\t"       \
	"movq 1040(%%rdi), %%rbp\n\t movq 1048(%%rdi), %%rsi\n\t"       \
	"movq 1056(%%rdi), %%r8\n\t  movq 1064(%%rdi), %%r9\n\t"        \
	"movq 1072(%%rdi), %%r10\n\t movq 1080(%%rdi), %%r11\n\t"       \
	"movq 1088(%%rdi), %%r12\n\t movq 1096(%%rdi), %%r13\n\t"       \
	"movq 1104(%%rdi), %%r14\n\t movq 1112(%%rdi), %%r15\n\t"       \
	"fldcw 1280(%%rdi)\n\t"                                         \
	"fldt 1216(%%rdi)\n\t fldt 1232(%%rdi)\n\t"
#define SPIN                                                            \
	"1: cmpl $0, 1296(%%rdi)\n\t"                                   \
	"jne 2f\n\t"                                                    \
	"rdtsc\n\t shlq $32, %%rdx\n\t orq %%rdx, %%rax\n\t"            \
	"cmpq 1288(%%rdi), %%rax\n\t"                                   \
	"jae 3f\n\t"                                                    \
	"pause\n\t jmp 1b\n"                                            \
	"3: movl $1, 1300(%%rdi)\n"                                     \
	"2:\n\t"
#define STORE_GPRS                                                      \
	"movq %%rbx, 1120(%%rdi)\n\t movq %%rcx, 1128(%%rdi)\n\t"       \
	"movq %%rbp, 1136(%%rdi)\n\t movq %%rsi, 1144(%%rdi)\n\t"       \
	"movq %%r8, 1152(%%rdi)\n\t  movq %%r9, 1160(%%rdi)\n\t"        \
	"movq %%r10, 1168(%%rdi)\n\t movq %%r11, 1176(%%rdi)\n\t"       \
	"movq %%r12, 1184(%%rdi)\n\t movq %%r13, 1192(%%rdi)\n\t"       \
	"movq %%r14, 1200(%%rdi)\n\t movq %%r15, 1208(%%rdi)\n\t"       \
	"movq 1304(%%rdi), %%rbp\n\t"                                   \
	"fstpt 1264(%%rdi)\n\t fstpt 1248(%%rdi)\n\t"                   \
	"fnstcw 1282(%%rdi)\n\t stmxcsr 1284(%%rdi)\n\t"
#define CLOBBERS                                                        \
	"rax", "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11",    \
	"r12", "r13", "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3",     \
	"xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",        \
	"xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc"

#define V16(op, reg, base)                                                    \
	op " " base "+0(%%rdi), %%" reg "0\n\t " op " " base "+32(%%rdi), %%" reg "1\n\t"     \
	op " " base "+64(%%rdi), %%" reg "2\n\t " op " " base "+96(%%rdi), %%" reg "3\n\t"    \
	op " " base "+128(%%rdi), %%" reg "4\n\t " op " " base "+160(%%rdi), %%" reg "5\n\t"  \
	op " " base "+192(%%rdi), %%" reg "6\n\t " op " " base "+224(%%rdi), %%" reg "7\n\t"  \
	op " " base "+256(%%rdi), %%" reg "8\n\t " op " " base "+288(%%rdi), %%" reg "9\n\t"  \
	op " " base "+320(%%rdi), %%" reg "10\n\t " op " " base "+352(%%rdi), %%" reg "11\n\t" \
	op " " base "+384(%%rdi), %%" reg "12\n\t " op " " base "+416(%%rdi), %%" reg "13\n\t" \
	op " " base "+448(%%rdi), %%" reg "14\n\t " op " " base "+480(%%rdi), %%" reg "15\n\t"
#define V16_STORE(op, reg, base)                                              \
	op " %%" reg "0, " base "+0(%%rdi)\n\t " op " %%" reg "1, " base "+32(%%rdi)\n\t"     \
	op " %%" reg "2, " base "+64(%%rdi)\n\t " op " %%" reg "3, " base "+96(%%rdi)\n\t"    \
	op " %%" reg "4, " base "+128(%%rdi)\n\t " op " %%" reg "5, " base "+160(%%rdi)\n\t"  \
	op " %%" reg "6, " base "+192(%%rdi)\n\t " op " %%" reg "7, " base "+224(%%rdi)\n\t"  \
	op " %%" reg "8, " base "+256(%%rdi)\n\t " op " %%" reg "9, " base "+288(%%rdi)\n\t"  \
	op " %%" reg "10, " base "+320(%%rdi)\n\t " op " %%" reg "11, " base "+352(%%rdi)\n\t" \
	op " %%" reg "12, " base "+384(%%rdi)\n\t " op " %%" reg "13, " base "+416(%%rdi)\n\t" \
	op " %%" reg "14, " base "+448(%%rdi)\n\t " op " %%" reg "15, " base "+480(%%rdi)\n\t"

__attribute__((target("avx"), noinline)) static void spin_avx(void)
{
	asm volatile(V16("vmovdqu", "ymm", "0") LOAD_GPRS SPIN
		     V16_STORE("vmovdqu", "ymm", "512") STORE_GPRS "vzeroupper\n\t"
		     : : "D"(&ctx) : CLOBBERS);
}

__attribute__((noinline)) static void spin_sse(void)
{
	asm volatile(V16("movdqu", "xmm", "0") LOAD_GPRS SPIN
		     V16_STORE("movdqu", "xmm", "512") STORE_GPRS
		     : : "D"(&ctx) : CLOBBERS);
}

static void on_usr2(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	if (sabotage) { /* what a restore that lost registers would look like */
		ucontext_t *uc = ucv;
		uc->uc_mcontext.gregs[REG_R12] ^= 1;
		uc->uc_mcontext.fpregs->_xmm[0].element[0] ^= 1;
	}
	ctx.flag = 1;
	wl_usr2_count++;
}

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static uint64_t fs_base(void)
{
	uint64_t fs = 0;
	syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
	return fs;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	sabotage = wl_sabotage();
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr2;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) < 0)
		wl_setup_fail("sigaction");

	__builtin_cpu_init();
	int avx = __builtin_cpu_supports("avx") && !getenv("WL_CPU_NO_AVX");
	printf("# %s\n", avx ? "AVX present: testing ymm0-15 (256 bit)"
			     : "no AVX: testing xmm0-15 (128 bit) only");

	/* patterns */
	wl_fill(ctx.vin, sizeof ctx.vin, 11, 0);
	for (int i = 0; i < 12; i++)
		ctx.gin[i] = 0x1111111111111111ull * (i + 1) ^ 0x0123456789abcdefull;
	ctx.xin[0] = 3.14159265358979323846264338327950288L;
	ctx.xin[1] = -2.71828182845904523536028747135266250L;
	ctx.fcw_in = FCW_RZ;
	wl_fill(tls_pat, sizeof tls_pat, 12, 0);
	uint64_t fs_before = fs_base();
	void *tls_addr_before = tls_pat;

	/* rdtsc-based timeout for the spin (no timer state) */
	double t0 = wl_now();
	uint64_t c0 = rdtsc();
	wl_sleep(0.05);
	double rate = (rdtsc() - c0) / (wl_now() - t0);
	ctx.tsc_deadline = rdtsc() + (uint64_t)(rate * wl_timeout_sec());

	unsigned old_mxcsr;
	asm volatile("stmxcsr %0" : "=m"(old_mxcsr));
	unsigned rz = MXCSR_RZ;
	asm volatile("ldmxcsr %0" : : "m"(rz));

	wl_write_pidfile(argv[1]);
	if (avx)
		spin_avx();
	else
		spin_sse();

	/* MXCSR still round-toward-zero, and the hardware really uses it:
	 * 1/3 rounds up (…aaab) to nearest but truncates (…aaaa) toward zero */
	float third = 1.0f, three = 3.0f; /* divide in asm: stays before ldmxcsr */
	asm volatile("divss %1, %0" : "+x"(third) : "x"(three));
	uint32_t bits;
	memcpy(&bits, &third, sizeof bits);
	asm volatile("ldmxcsr %0" : : "m"(old_mxcsr));
	if (ctx.timed_out)
		wl_timeout();

	int bad = -1;
	for (int i = 0; i < 12 && bad < 0; i++)
		if (ctx.gout[i] != ctx.gin[i])
			bad = i;
	if (bad >= 0)
		wl_fail("gpr", "%s: expected %#llx got %#llx", gpr_names[bad],
			(unsigned long long)ctx.gin[bad], (unsigned long long)ctx.gout[bad]);
	else
		wl_ok("gpr");

	int width = avx ? 32 : 16;
	bad = -1;
	for (int i = 0; i < 16 && bad < 0; i++)
		if (memcmp(ctx.vin[i], ctx.vout[i], width))
			bad = i;
	if (bad >= 0) {
		int b = 0;
		while (ctx.vin[bad][b] == ctx.vout[bad][b])
			b++;
		wl_fail(avx ? "ymm" : "xmm", "%s%d byte %d: expected 0x%02x got 0x%02x",
			avx ? "ymm" : "xmm", bad, b, ctx.vin[bad][b], ctx.vout[bad][b]);
	} else {
		wl_ok(avx ? "ymm" : "xmm");
	}

	wl_check(memcmp(&ctx.xin[0], &ctx.xout[0], 10) == 0 &&
		 memcmp(&ctx.xin[1], &ctx.xout[1], 10) == 0, "x87",
		 "st(0)/st(1): expected %Lg %Lg got %Lg %Lg", ctx.xin[1], ctx.xin[0],
		 ctx.xout[1], ctx.xout[0]);
	wl_check(ctx.fcw_out == FCW_RZ, "x87-cw", "expected %#x got %#x", FCW_RZ,
		 ctx.fcw_out);
	wl_check(ctx.mxcsr_out == MXCSR_RZ, "mxcsr", "expected %#x got %#x",
		 MXCSR_RZ, ctx.mxcsr_out);
	wl_check(bits == 0x3eaaaaaa, "mxcsr-rounding",
		 "1.0f/3.0f = %#x, expected %#x (toward zero)", bits, 0x3eaaaaaa);

	uint64_t fs_after = fs_base(), tcb_self;
	asm volatile("movq %%fs:0, %0" : "=r"(tcb_self));
	wl_check(fs_after == fs_before && tcb_self == fs_before, "fs_base",
		 "expected %#llx got %#llx (fs:0 = %#llx)", (unsigned long long)fs_before,
		 (unsigned long long)fs_after, (unsigned long long)tcb_self);
	wl_check((void *)tls_pat == tls_addr_before &&
		 wl_mismatch(tls_pat, sizeof tls_pat, 12, 0) < 0, "tls",
		 "__thread array at %p (was %p) lost its pattern", (void *)tls_pat,
		 tls_addr_before);
	wl_finish();
}
