// no_vdso.c: a process that unmapped its vDSO ([vdso], [vvar], [vvar_vclock]) restores
// without one. The parent forks a child that unmaps the three with raw syscalls (glibc would
// call into the vDSO for the time) and then waits in read() on a pipe; the parent keeps its
// vDSO. After SIGUSR2: the child still has none of the three (/proc/CHILD/maps), its memory
// (a 64 KiB pattern) is intact, it answers through the pipe, and still has none after
// running; the parent's own vDSO works (clock_gettime) and is where it was. Sabotage:
// expects another checksum -> `child-memory`.
// build:
//
// Usage: no_vdso PIDFILE
#include "wl.h"
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct range {
	unsigned long start, end;
};

// The special mappings of `pid` (name: "[vdso]", ...): how many of the three are mapped.
static int specials(pid_t pid, struct range r[3])
{
	static const char *names[3] = { "[vdso]", "[vvar]", "[vvar_vclock]" };
	static char maps[1 << 16];
	char path[64];
	int n = 0;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	if (wl_read_file(path, maps, sizeof maps) < 0)
		return -1;
	for (int i = 0; i < 3; i++) {
		char want[32];
		snprintf(want, sizeof want, " %s\n", names[i]);
		char *p = strstr(maps, want);
		r[i].start = r[i].end = 0;
		if (!p)
			continue;
		while (p > maps && p[-1] != '\n')
			p--;
		sscanf(p, "%lx-%lx", &r[i].start, &r[i].end);
		n++;
	}
	return n;
}

static unsigned char pattern[64 << 10];

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	struct range mine[3], kid[3];
	if (specials(getpid(), mine) < 1)
		wl_setup_fail("no [vdso] to unmap");
	wl_fill(pattern, sizeof pattern, 7, 0);
	int go[2], back[2];
	if (pipe(go) || pipe(back))
		wl_setup_fail("pipe");
	pid_t k = fork();
	if (k < 0)
		wl_setup_fail("fork");
	if (k == 0) {
		// Raw syscalls only from here on: nothing may call into the vDSO.
		for (int i = 0; i < 3; i++)
			if (mine[i].start && syscall(SYS_munmap, mine[i].start, mine[i].end - mine[i].start))
				syscall(SYS_exit, 3);
		char c = 0;
		syscall(SYS_write, back[1], "u", 1); // unmapped
		while (syscall(SYS_read, go[0], &c, 1) != 1)
			;
		unsigned long sum = 0;
		for (size_t i = 0; i < sizeof pattern; i++)
			sum = sum * 31 + pattern[i];
		syscall(SYS_write, back[1], &sum, sizeof sum);
		while (syscall(SYS_read, go[0], &c, 1) != 1)
			;
		syscall(SYS_exit, 0);
	}
	char c;
	if (read(back[0], &c, 1) != 1 || specials(k, kid) != 0)
		wl_setup_fail("the child did not unmap its vDSO");
	unsigned long want = 0;
	for (size_t i = 0; i < sizeof pattern; i++)
		want = want * 31 + pattern[i];
	usleep(50000); // the child is in read()
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	wl_check(specials(k, kid) == 0, "child-no-vdso-after-restore",
		 "the child has a vDSO again: [vdso] %lx [vvar] %lx", kid[0].start, kid[1].start);
	unsigned long sum = 0;
	if (write(go[1], "g", 1) != 1 || read(back[0], &sum, sizeof sum) != sizeof sum)
		wl_fail("child-answers", "no answer from the child");
	else
		wl_ok("child-answers");
	if (wl_sabotage()) // as if the child's memory had lost a bit
		want ^= 1;
	wl_check(sum == want, "child-memory", "checksum %#lx, expected %#lx", sum, want);
	wl_check(specials(k, kid) == 0, "child-no-vdso-after-running", "the child has a vDSO");
	struct range now[3];
	specials(getpid(), now);
	wl_check(now[0].start == mine[0].start && now[1].start == mine[1].start,
		 "parent-vdso-in-place", "[vdso] %lx (was %lx), [vvar] %lx (was %lx)", now[0].start,
		 mine[0].start, now[1].start, mine[1].start);
	struct timespec ts;
	wl_check(clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && ts.tv_sec > 0, "parent-vdso-works",
		 "clock_gettime");
	int st = 0;
	wl_check(write(go[1], "g", 1) == 1 && waitpid(k, &st, 0) == k && WIFEXITED(st) &&
			 WEXITSTATUS(st) == 0,
		 "child-exit", "status %#x", st);
	wl_finish();
}
