// cow_tree.c: memory a parent and its children share copy-on-write after fork stays shared
// after restore (and is saved once), while what each wrote stays its own.
// build:
//
// The parent fills 64 MiB with a pattern, then forks 3 children. Child i rewrites its own
// 1 MiB slice i of the region (so those pages become its private copies) and waits on a
// pipe. After restore and SIGUSR2, every process checks the whole region: the pattern, with
// slice i rewritten in child i only. The harness compares the tree's proportional set size
// (Pss) before the dump and after the restore.
//
// Usage: cow_tree PIDFILE
#include "wl.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define MB (1024 * 1024)
#define SIZE (64 * MB)
#define KIDS 3

static unsigned char *mem;

static unsigned char want(size_t off, int who)
{
	size_t slice = off / MB;
	if (who >= 0 && slice == (size_t)who)
		return (unsigned char)(0xA0 + who);
	return (unsigned char)(off * 31 / 4096 + off);
}

static int region_ok(int who)
{
	for (size_t off = 0; off < SIZE; off++)
		if (mem[off] != want(off, who))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		wl_setup_fail("mmap");
	for (size_t off = 0; off < SIZE; off++)
		mem[off] = want(off, -1);
	int go[2], ready[2];
	if (pipe(go) || pipe(ready))
		wl_setup_fail("pipe");
	pid_t kids[KIDS];
	for (int i = 0; i < KIDS; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			wl_setup_fail("fork");
		if (kids[i] == 0) {
			memset(mem + (size_t)i * MB, 0xA0 + i, MB);
			if (write(ready[1], "r", 1) != 1)
				_exit(5);
			char c;
			if (read(go[0], &c, 1) != 1)
				_exit(6);
			_exit(region_ok(i) ? 0 : 1);
		}
	}
	for (int i = 0; i < KIDS; i++) {
		char c;
		if (read(ready[0], &c, 1) != 1)
			wl_setup_fail("ready");
	}
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	wl_check(region_ok(-1), "parent-region", "the parent's memory differs");
	if (write(go[1], "ggg", KIDS) != KIDS)
		wl_setup_fail("go");
	for (int i = 0; i < KIDS; i++) {
		int st;
		char name[32];
		snprintf(name, sizeof name, "child%d-region", i);
		wl_check(waitpid(kids[i], &st, 0) == kids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			 name, "status %#x", st);
	}
	wl_finish();
}
