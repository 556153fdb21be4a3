// shared_fdtable.c: a parent and a child sharing one fd table (clone with CLONE_FILES, no
// CLONE_VM: a fork that keeps the table; zdtm fdt_shared). Restored as two
// tables with the same fds, every check below fails: the table must be one again.
// build:
//
// Usage: shared_fdtable PIDFILE
// The child C waits for commands on pipe `cmd` (made before the clone, so in the shared
// table) and answers on pipe `ans`. Before the pidfile both sides check that an fd opened by
// one is seen by the other. After SIGUSR2: kcmp(KCMP_FILES) says the tables are one; C opens
// a memfd and sends its number: the parent reads C's bytes through it; the parent opens a
// memfd, C finds it under that number; the parent closes C's memfd and C sees EBADF; C exits 0.
#include "wl.h"
#include <linux/kcmp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int cmd[2], ans[2];

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		got += r;
	}
	return 1;
}

static int send_int(int fd, int v)
{
	return write(fd, &v, sizeof v) == sizeof v;
}

static int recv_int(int fd)
{
	int v = -1;
	return read_full(fd, &v, sizeof v) ? v : -1;
}

/* A memfd named `name` holding `text`; its fd number. */
static int make_memfd(const char *name, const char *text)
{
	int fd = memfd_create(name, 0);
	if (fd >= 0 && write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -1;
	return fd;
}

/* Whether fd `n` is a memfd named `name`. */
static int is_memfd(int n, const char *name)
{
	char path[64], link[256] = {0}, want[256];
	snprintf(path, sizeof path, "/proc/self/fd/%d", n);
	snprintf(want, sizeof want, "/memfd:%s (deleted)", name);
	return readlink(path, link, sizeof link - 1) > 0 && !strcmp(link, want);
}

/* The child: serve commands until 'q'. */
static void child_loop(void)
{
	int mine = -1;
	for (;;) {
		int c = recv_int(cmd[0]);
		switch (c) {
		case 'o': /* open a memfd, send its number */
			mine = make_memfd("from-child", "child-was-here");
			send_int(ans[1], mine);
			break;
		case 'f': { /* is the parent's fd N there? */
			int n = recv_int(cmd[0]);
			send_int(ans[1], is_memfd(n, "from-parent"));
			break;
		}
		case 'c': /* is my fd closed now? */
			send_int(ans[1], fcntl(mine, F_GETFD) == -1 && errno == EBADF);
			break;
		case 'q':
			_exit(0);
		default:
			_exit(9);
		}
	}
}

/* One round of checks, printed only when `report`; the number of failures. */
static int round_of_checks(pid_t kid, int report)
{
	int fails = 0;
	long same = syscall(SYS_kcmp, getpid(), kid, KCMP_FILES, 0, 0);
	if (report)
		fails += !wl_check(same == 0, "kcmp-files", "kcmp %ld (errno %d)", same, errno);
	else
		fails += same != 0;

	send_int(cmd[1], 'o');
	int n = recv_int(ans[0]);
	char buf[32] = {0};
	int ok = n >= 0 && pread(n, buf, 14, 0) == 14 && !strcmp(buf, "child-was-here");
	if (report)
		fails += !wl_check(ok, "child-fd-seen-by-parent", "fd %d read '%s' (errno %d)", n,
				   buf, errno);
	else
		fails += !ok;

	int p = make_memfd("from-parent", "parent");
	send_int(cmd[1], 'f');
	send_int(cmd[1], p);
	int seen = recv_int(ans[0]);
	if (report)
		fails += !wl_check(p >= 0 && seen == 1, "parent-fd-seen-by-child", "fd %d: child says %d",
				   p, seen);
	else
		fails += seen != 1;
	close(p);

	close(n);
	send_int(cmd[1], 'c');
	int closed = recv_int(ans[0]);
	if (report)
		fails += !wl_check(closed == 1, "close-seen-by-child", "child says %d", closed);
	else
		fails += closed != 1;
	return fails;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	if (pipe(cmd) || pipe(ans))
		wl_setup_fail("pipe");
	fflush(stdout);
	// No CLONE_VM: the child runs on a copy of our memory, like after fork().
	long kid = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, NULL, NULL, 0);
	if (kid < 0)
		wl_setup_fail("clone(CLONE_FILES)");
	if (kid == 0)
		child_loop();
	if (round_of_checks(kid, 0)) {
		errno = EINVAL;
		wl_setup_fail("the fd table is not shared before the dump");
	}
	printf("# child %ld shares our fd table\n", kid);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	round_of_checks(kid, 1);
	send_int(cmd[1], 'q');
	int st = 0;
	pid_t w = waitpid(kid, &st, 0);
	wl_check(w == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child-exit", "waitpid %d status %#x",
		 (int)w, st);
	wl_finish();
}
