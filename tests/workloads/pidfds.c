// pidfds.c: pidfds of the process itself (O_NONBLOCK), of a child in the tree (two fds of
// one description), of a grandchild (restored after this process: its pidfd can only be made
// once the whole tree exists), and of two children that have exited and been reaped (one
// through two descriptions). After restore: the own pidfd names this process (same pidfs inode as a
// fresh pidfd_open, signal 0 delivered, O_NONBLOCK kept); the child's pidfd kills and reaps
// exactly that child (waitid P_PIDFD); the grandchild's pidfd kills the grandchild (it
// polls readable once it is dead); the gone ones report ESRCH, the two of one process
// share their inode and the other process's differs.
//
// Usage: pidfds PIDFILE
#include "wl.h"
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int pidfd_signal(int fd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

static ino_t ino(int fd)
{
	struct stat st;
	return fstat(fd, &st) ? 0 : st.st_ino;
}

/* A child that exits at once, and a pidfd of it taken before it is reaped. */
static pid_t gone(int *fd1, int *fd2)
{
	pid_t c = fork();
	if (c == 0)
		_exit(0);
	*fd1 = pidfd_open(c, 0);
	if (fd2)
		*fd2 = pidfd_open(c, 0);
	if (*fd1 < 0 || (fd2 && *fd2 < 0) || waitpid(c, NULL, 0) != c)
		wl_setup_fail("a gone child's pidfd");
	return c;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int self = pidfd_open(getpid(), O_NONBLOCK);
	int gp[2];
	if (pipe(gp))
		wl_setup_fail("pipe");
	pid_t kid = fork();
	if (kid == 0) {
		pid_t g = fork();
		if (g == 0) {
			for (;;)
				pause();
		}
		if (write(gp[1], &g, sizeof g) != sizeof g)
			_exit(3);
		for (;;)
			pause();
	}
	pid_t gkid = 0;
	if (read(gp[0], &gkid, sizeof gkid) != sizeof gkid)
		wl_setup_fail("the grandchild's pid");
	int gfd = pidfd_open(gkid, 0);
	int kfd = pidfd_open(kid, 0);
	int kdup = dup(kfd);
	int g1a, g1b, g2;
	gone(&g1a, &g1b);
	gone(&g2, NULL);
	if (self < 0 || kid < 0 || kfd < 0 || kdup < 0 || gfd < 0)
		wl_setup_fail("pidfds");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	int fresh = pidfd_open(getpid(), 0);
	wl_check(ino(self) == ino(fresh) && pidfd_signal(self, 0) == 0, "self", "inode %lu vs %lu",
		 (unsigned long)ino(self), (unsigned long)ino(fresh));
	wl_check(fcntl(self, F_GETFL) & O_NONBLOCK, "self-nonblock", "O_NONBLOCK lost");
	wl_check(ino(kfd) == ino(kdup), "child-dup-same", "two inodes");
	struct pollfd pfd = {.fd = gfd, .events = POLLIN};
	int alive_before = poll(&pfd, 1, 0) == 0;
	int killed = pidfd_signal(gfd, SIGKILL) == 0 && poll(&pfd, 1, 5000) == 1;
	wl_check(alive_before && killed, "grandchild-killed-by-pidfd", "alive %d killed %d", alive_before, killed);
	siginfo_t si = {0};
	int w = pidfd_signal(kdup, SIGTERM) == 0 ? waitid(P_PIDFD, kfd, &si, WEXITED) : -1;
	wl_check(w == 0 && si.si_pid == kid && si.si_status == SIGTERM, "child-killed-and-reaped-by-pidfd",
		 "waitid %d pid %d (want %d) status %d", w, si.si_pid, kid, si.si_status);
	errno = 0;
	wl_check(pidfd_signal(g1a, 0) < 0 && errno == ESRCH, "gone-esrch", "errno %d", errno);
	wl_check(ino(g1a) == ino(g1b) && ino(g1a) != ino(g2) && ino(g2) != 0, "gone-inodes",
		 "%lu %lu %lu", (unsigned long)ino(g1a), (unsigned long)ino(g1b), (unsigned long)ino(g2));
	wl_finish();
}
