// proc_files.c: files under /proc of the process itself and of its child held open (as
// zdtm child_opened_proc does): /proc/self/maps and /proc/self/status (read 5 bytes in),
// /proc/CHILD/stat and /proc/CHILD/maps. Such a file names a process of the restored tree,
// which does not exist yet while a restorer opens files: it has to be opened once it does.
// build:
//
// Usage: proc_files PIDFILE
// The child K names itself wl-proc-kid, maps a page of its own (its address sent to the
// parent) and waits on a pipe. After SIGUSR2: /proc/self/maps lists our marker page (and not
// K's), status is at offset 5 and says our pid, K's stat starts with K's pid and
// (wl-proc-kid), K's maps lists K's page (and not ours); once K is reaped its stat fd reads
// ESRCH (it was the live process's).
#include "wl.h"
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static char text[1 << 18];

/* Whole text of an open /proc file, read from offset 0. */
static long read_all(int fd)
{
	if (lseek(fd, 0, SEEK_SET) != 0)
		return -1;
	long len = 0;
	for (;;) {
		ssize_t r = read(fd, text + len, sizeof text - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		len += r;
	}
	text[len] = 0;
	return len;
}

/* Whether the maps text holds a line starting at `addr`. */
static int lists(unsigned long addr)
{
	char want[32];
	snprintf(want, sizeof want, "%lx-", addr);
	for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, want, strlen(want)))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int to_kid[2], from_kid[2];
	if (pipe(to_kid) || pipe(from_kid))
		wl_setup_fail("pipe");
	char *mine = mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mine == MAP_FAILED)
		wl_setup_fail("mmap");
	fflush(stdout);
	pid_t k = fork();
	if (k < 0)
		wl_setup_fail("fork");
	if (k == 0) {
		prctl(PR_SET_NAME, "wl-proc-kid");
		munmap(mine, 3 * 4096);
		char *its = mmap(NULL, 5 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned long a = (unsigned long)its;
		if (its == MAP_FAILED || write(from_kid[1], &a, sizeof a) != sizeof a)
			_exit(7);
		char c;
		while (read(to_kid[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	unsigned long its = 0;
	if (read(from_kid[0], &its, sizeof its) != sizeof its)
		wl_setup_fail("read the child's address");
	char p[64];
	int self_maps = open("/proc/self/maps", O_RDONLY);
	int self_status = open("/proc/self/status", O_RDONLY);
	snprintf(p, sizeof p, "/proc/%d/stat", (int)k);
	int kid_stat = open(p, O_RDONLY);
	snprintf(p, sizeof p, "/proc/%d/maps", (int)k);
	int kid_maps = open(p, O_RDONLY);
	char five[6] = {0};
	if (self_maps < 0 || self_status < 0 || kid_stat < 0 || kid_maps < 0)
		wl_setup_fail("open /proc files");
	if (read(self_status, five, 5) != 5)
		wl_setup_fail("read status");
	printf("# child %d; our page %p, the child's %#lx\n", (int)k, (void *)mine, its);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	long n = read_all(self_maps);
	wl_check(n > 0 && lists((unsigned long)mine) && !lists(its) && strstr(text, "[stack]"),
		 "self-maps", "read %ld bytes: our page %d, the child's %d", n, lists((unsigned long)mine),
		 lists(its));
	off_t pos = lseek(self_status, 0, SEEK_CUR);
	wl_check(pos == 5, "status-offset", "offset %ld", (long)pos);
	char want[64];
	snprintf(want, sizeof want, "\nPid:\t%d\n", (int)getpid());
	n = read_all(self_status);
	wl_check(n > 0 && strstr(text, want) != NULL, "self-status", "no '%s' in %ld bytes", want + 1, n);

	snprintf(want, sizeof want, "%d (wl-proc-kid) ", (int)k);
	n = read_all(kid_stat);
	wl_check(n > 0 && !strncmp(text, want, strlen(want)), "child-stat", "read %ld: %.40s", n,
		 n > 0 ? text : "");
	n = read_all(kid_maps);
	wl_check(n > 0 && lists(its) && !lists((unsigned long)mine), "child-maps",
		 "read %ld bytes: the child's page %d, ours %d", n, lists(its), lists((unsigned long)mine));

	if (write(to_kid[1], "x", 1) != 1)
		wl_fail("child-exit", "write");
	int st = 0;
	pid_t w = waitpid(k, &st, 0);
	wl_check(w == k && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child-exit", "status %#x", st);
	errno = 0;
	n = read_all(kid_stat);
	wl_check(n < 0 && errno == ESRCH, "child-stat-was-the-child",
		 "read %ld after the child was reaped (errno %d)", n, errno);
	wl_finish();
}
