// locks.c: file locks survive dump/restore: a flock(LOCK_EX), a POSIX record lock on bytes
// 10..29 and an OFD read lock. Each is checked from a child process after restore (another
// process must find the lock held), and the POSIX lock is still the process's own (F_GETLK
// from the child reports this pid).
// build: -D_GNU_SOURCE
//
// Usage: locks PIDFILE [TMPDIR]
#include "wl.h"
#include <sys/file.h>
#include <sys/wait.h>

static int fails;

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	char pa[512], pb[512], pc[512];
	snprintf(pa, sizeof pa, "%s/wl-lock-a-%d", tmp, (int)getpid());
	snprintf(pb, sizeof pb, "%s/wl-lock-b-%d", tmp, (int)getpid());
	snprintf(pc, sizeof pc, "%s/wl-lock-c-%d", tmp, (int)getpid());
	int a = open(pa, O_RDWR | O_CREAT, 0644), b = open(pb, O_RDWR | O_CREAT, 0644), c = open(pc, O_RDWR | O_CREAT, 0644);
	if (a < 0 || b < 0 || c < 0 || flock(a, LOCK_EX))
		return 3;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 20};
	struct flock ofd = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
	if (fcntl(b, F_SETLK, &fl) || fcntl(c, F_OFD_SETLK, &ofd))
		return 3;
	if (wl_sabotage())
		flock(a, LOCK_UN);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	/* the flock is this process's own again, as the kernel records its owner */
	char info[64], text[4096] = {0}, want[64];
	snprintf(info, sizeof info, "/proc/self/fdinfo/%d", a);
	snprintf(want, sizeof want, "FLOCK  ADVISORY  WRITE %d ", (int)getpid());
	wl_read_file(info, text, sizeof text);
	if (strstr(text, want))
		printf("ok flock-owner\n");
	else {
		printf("FAIL flock-owner: %s has no \"%s\": %s\n", info, want, text);
		fails++;
	}

	pid_t me = getpid();
	pid_t k = fork();
	if (k == 0) {
		int bad = 0;
		int a2 = open(pa, O_RDWR);
		if (flock(a2, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
			printf("FAIL flock: another process could take it\n");
			bad++;
		} else
			printf("ok flock\n");
		int b2 = open(pb, O_RDWR);
		struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 15, .l_len = 1};
		if (fcntl(b2, F_GETLK, &q) == 0 && q.l_type == F_WRLCK && q.l_pid == me && q.l_start == 10 && q.l_len == 20)
			printf("ok posix-lock\n");
		else {
			printf("FAIL posix-lock: type %d pid %d start %ld len %ld\n", q.l_type, (int)q.l_pid, (long)q.l_start, (long)q.l_len);
			bad++;
		}
		int c2 = open(pc, O_RDWR);
		struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		if (fcntl(c2, F_OFD_SETLK, &w) != 0)
			printf("ok ofd-lock\n");
		else {
			printf("FAIL ofd-lock: a write lock could be taken over the read lock\n");
			bad++;
		}
		fflush(stdout);
		_exit(bad);
	}
	int st;
	waitpid(k, &st, 0);
	fails += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	unlink(pa);
	unlink(pb);
	unlink(pc);
	printf("# %s: %d check(s) failed\n", fails ? "FAILED" : "PASSED", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
