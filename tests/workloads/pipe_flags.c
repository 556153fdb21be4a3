// pipe_flags.c: one pipe held through several open file descriptions with different flags,
// as a program gets by reopening an end through /proc/self/fd: the write end's first
// description is O_NONBLOCK, its dup shares that, a reopened one is blocking; the read end's
// reopened description is O_NONBLOCK while the original is not. After restore each fd has its
// own description's flags again, dups still share theirs, and the pipe still carries data
// between the descriptions.
//
// Usage: pipe_flags PIDFILE
#include "wl.h"

static int nonblock(int fd)
{
	return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int p[2];
	char path[64];
	if (pipe(p))
		wl_setup_fail("pipe");
	int wdup = dup(p[1]);
	snprintf(path, sizeof path, "/proc/self/fd/%d", p[1]);
	int wre = open(path, O_WRONLY);
	snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
	int rre = open(path, O_RDONLY);
	if (wdup < 0 || wre < 0 || rre < 0)
		wl_setup_fail("dup, reopen");
	if (fcntl(p[1], F_SETFL, O_NONBLOCK) || fcntl(rre, F_SETFL, O_NONBLOCK))
		wl_setup_fail("F_SETFL");
	if (write(wre, "abc", 3) != 3)
		wl_setup_fail("write");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	wl_check(nonblock(p[1]) && nonblock(wdup), "write-end-nonblock", "%d %d", nonblock(p[1]), nonblock(wdup));
	wl_check(!nonblock(wre), "reopened-write-end-blocking", "O_NONBLOCK set");
	wl_check(!nonblock(p[0]) && nonblock(rre), "read-ends-own-flags", "%d %d", nonblock(p[0]), nonblock(rre));
	fcntl(wdup, F_SETFL, 0);
	wl_check(!nonblock(p[1]), "dup-shares-its-description", "F_SETFL on the dup did not reach the original");
	char buf[8] = {0};
	wl_check(write(p[1], "de", 2) == 2 && read(rre, buf, 5) == 5 && strcmp(buf, "abcde") == 0, "data", "%s", buf);
	wl_finish();
}
