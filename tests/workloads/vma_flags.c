// vma_flags.c: anonymous mappings with VMA flags set by madvise or mlock, and guard pages
// (what zdtm's madvise, mlock and guard-page tests look at): a restorer that maps each VMA
// again with mmap alone loses every one of them.
// build:
//
// Usage: vma_flags PIDFILE
// Seven 4-page private anonymous mappings, each with its own pattern: MADV_DONTFORK (VmFlags
// dc), MADV_WIPEONFORK (wf), MADV_HUGEPAGE (hg), MADV_NOHUGEPAGE (nh), MADV_DONTDUMP (dd),
// MAP_LOCKED (lo) and mlock() (lo); and a 5-page mapping whose middle page is a guard page
// (MADV_GUARD_INSTALL, Linux 6.13: `skip` lines where the kernel refuses it). After SIGUSR2:
// each mapping's VmFlags hold its flag and are the same as before, every byte is there; a
// forked child has no DONTFORK mapping and zeros in the WIPEONFORK one; touching the guard
// page still raises SIGSEGV (read and write) while the pages around it keep their bytes.
#include "wl.h"
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/wait.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PAGE 4096
#define NPAGES 4

enum { M_DC, M_WF, M_HG, M_NH, M_DD, M_LOCKED, M_MLOCK, M_COUNT };

static const struct {
	const char *check, *flag;
	int advice; /* madvise advice, or -1 for MAP_LOCKED, -2 for mlock */
} kinds[M_COUNT] = {
	{"dontfork", "dc", MADV_DONTFORK},     {"wipeonfork", "wf", MADV_WIPEONFORK},
	{"hugepage", "hg", MADV_HUGEPAGE},     {"nohugepage", "nh", MADV_NOHUGEPAGE},
	{"dontdump", "dd", MADV_DONTDUMP},     {"map-locked", "lo", -1},
	{"mlock", "lo", -2},
};

static char *maps[M_COUNT];
static int usable[M_COUNT];
static char before[M_COUNT][256];
static char smaps[1 << 20];

/* The VmFlags of the VMA holding `addr` (from /proc/self/smaps) into out; 0 if none. */
static int vmflags_of(const void *addr, char *out, size_t outlen)
{
	if (wl_read_file("/proc/self/smaps", smaps, sizeof smaps) <= 0)
		return 0;
	unsigned long a = (unsigned long)addr;
	int inside = 0;
	for (char *l = strtok(smaps, "\n"); l; l = strtok(NULL, "\n")) {
		unsigned long s, e;
		if (sscanf(l, "%lx-%lx ", &s, &e) == 2 && strchr(l, '-') < strchr(l, ' ')) {
			inside = s <= a && a < e;
			continue;
		}
		if (inside && !strncmp(l, "VmFlags:", 8)) {
			snprintf(out, outlen, "%s", l + 8);
			return 1;
		}
	}
	return 0;
}

/* Whether the space-separated VmFlags list holds mnemonic `f`. */
static int has_flag(const char *flags, const char *f)
{
	char pad[300], want[8];
	snprintf(pad, sizeof pad, " %s ", flags);
	snprintf(want, sizeof want, " %s ", f);
	return strstr(pad, want) != NULL;
}

static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

/* Whether reading (or writing) the byte at p raises SIGSEGV. */
static int faults(volatile char *p, int write)
{
	struct sigaction sa = {.sa_handler = on_segv}, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old);
	int hit = 0;
	if (sigsetjmp(jb, 1) == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
	} else {
		hit = 1;
	}
	sigaction(SIGSEGV, &old, NULL);
	return hit;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	size_t len = NPAGES * PAGE;
	for (int i = 0; i < M_COUNT; i++) {
		int extra = kinds[i].advice == -1 ? MAP_LOCKED : 0;
		maps[i] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1,
			       0);
		if (maps[i] == MAP_FAILED)
			wl_setup_fail("mmap");
		wl_fill(maps[i], len, 100 + i, 0);
		int r = 0;
		if (kinds[i].advice == -2)
			r = mlock(maps[i], len);
		else if (kinds[i].advice >= 0)
			r = madvise(maps[i], len, kinds[i].advice);
		if (r && errno == EINVAL) {
			printf("# %s: madvise EINVAL (not in this kernel)\n", kinds[i].check);
			continue;
		}
		if (r)
			wl_setup_fail(kinds[i].check);
		if (!vmflags_of(maps[i], before[i], sizeof before[i]) ||
		    !has_flag(before[i], kinds[i].flag)) {
			errno = EINVAL;
			wl_setup_fail("the flag is not in VmFlags before the dump");
		}
		usable[i] = 1;
		printf("# %s at %p: VmFlags%s\n", kinds[i].check, (void *)maps[i], before[i]);
	}

	size_t glen = 5 * PAGE;
	char *g = mmap(NULL, glen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g == MAP_FAILED)
		wl_setup_fail("mmap guard region");
	wl_fill(g, glen, 200, 0);
	int guards = madvise(g + 2 * PAGE, PAGE, MADV_GUARD_INSTALL) == 0;
	if (!guards && errno != EINVAL)
		wl_setup_fail("MADV_GUARD_INSTALL");
	if (guards && (!faults(g + 2 * PAGE, 0) || !faults(g + 2 * PAGE + 100, 1))) {
		errno = EINVAL;
		wl_setup_fail("the guard page does not fault before the dump");
	}
	printf("# guard region at %p (guard page at %p)%s\n", (void *)g, (void *)(g + 2 * PAGE),
	       guards ? "" : ": MADV_GUARD_INSTALL refused");
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	for (int i = 0; i < M_COUNT; i++) {
		char name[64], now[256] = "";
		snprintf(name, sizeof name, "vmflag-%s", kinds[i].check);
		if (!usable[i]) {
			wl_skip(name, "the kernel refused the advice");
			continue;
		}
		vmflags_of(maps[i], now, sizeof now);
		wl_check(has_flag(now, kinds[i].flag), name, "no %s in VmFlags%s", kinds[i].flag, now);
		snprintf(name, sizeof name, "vmflags-same-%s", kinds[i].check);
		wl_check(!strcmp(now, before[i]), name, "VmFlags%s, before%s", now, before[i]);
		snprintf(name, sizeof name, "data-%s", kinds[i].check);
		wl_check_pat(name, maps[i], len, 100 + i, 0);
	}

	// A forked child: the DONTFORK mapping is not there, the WIPEONFORK one is zeros, the
	// others are copies.
	pid_t k = fork();
	if (k == 0) {
		int bad = 0;
		if (usable[M_DC] && !(msync(maps[M_DC], len, MS_ASYNC) == -1 && errno == ENOMEM))
			bad |= 1;
		if (usable[M_WF] && wl_nonzero(maps[M_WF], len) >= 0)
			bad |= 2;
		if (wl_mismatch(maps[M_NH], len, 100 + M_NH, 0) >= 0)
			bad |= 4;
		_exit(bad);
	}
	int st = 0;
	waitpid(k, &st, 0);
	wl_check(WIFEXITED(st) && !(WEXITSTATUS(st) & 1), "fork-dontfork", "child status %#x", st);
	wl_check(WIFEXITED(st) && !(WEXITSTATUS(st) & 2), "fork-wipeonfork", "child status %#x", st);
	wl_check(WIFEXITED(st) && !(WEXITSTATUS(st) & 4), "fork-copies", "child status %#x", st);
	wl_check_pat("wipeonfork-kept-in-parent", maps[M_WF], len, 100 + M_WF, 0);

	if (!guards) {
		wl_skip("guard-faults", "MADV_GUARD_INSTALL not supported");
		wl_skip("guard-neighbours", "MADV_GUARD_INSTALL not supported");
	} else {
		wl_check(faults(g + 2 * PAGE, 0) && faults(g + 3 * PAGE - 1, 1), "guard-faults",
			 "touching the guard page at %p did not fault", (void *)(g + 2 * PAGE));
		int ok = wl_mismatch(g, 2 * PAGE, 200, 0) < 0 &&
			 wl_mismatch(g + 3 * PAGE, 2 * PAGE, 200, 3 * PAGE) < 0;
		wl_check(ok, "guard-neighbours", "the pages around the guard page lost their bytes");
	}
	wl_finish();
}
