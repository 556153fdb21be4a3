// leases.c: file leases survive dump/restore: an active read lease and an active write lease,
// a read lease being broken (to nothing) and a write lease being broken to a read lease, each
// by a conflicting non-blocking open before the dump. After restore: F_GETLEASE gives what
// it gave before (the breaking ones their target type), no break signal came from the
// restore itself, and a conflicting open from a child breaks the active read lease again,
// signalling this process with si_fd naming the leased fd (the setter is the owner again).
// build: -D_GNU_SOURCE
//
// Usage: leases PIDFILE [TMPDIR]   (as root, on a filesystem with leases)
#include "wl.h"
#include <sys/wait.h>

static volatile sig_atomic_t breaks, last_fd;

static void on_break(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	breaks++;
	last_fd = si->si_fd;
}

static int leased(const char *path, int mode, int type, int sig)
{
	int fd = open(path, mode | O_CREAT, 0644);
	if (fd < 0 || fcntl(fd, F_SETLEASE, type) || fcntl(fd, F_SETSIG, sig))
		wl_setup_fail(path);
	return fd;
}

/* Start breaking the lease on `path` with a conflicting open that does not wait. */
static void start_break(const char *path, int mode)
{
	int fd = open(path, mode | O_NONBLOCK);
	if (fd >= 0 || errno != EWOULDBLOCK)
		wl_setup_fail("breaking a lease");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	int sig = SIGRTMIN + 2;
	struct sigaction sa = {.sa_sigaction = on_break, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		wl_setup_fail("sigaction");
	char p[4][512];
	for (int i = 0; i < 4; i++) {
		snprintf(p[i], sizeof p[i], "%s/wl-lease-%d-%d", tmp, i, (int)getpid());
		wl_tmp_register(p[i]);
	}
	int rd = leased(p[0], O_RDONLY, F_RDLCK, sig);
	int wr = leased(p[1], O_RDWR, F_WRLCK, sig);
	int brd = leased(p[2], O_RDONLY, F_RDLCK, sig);
	int bwr = leased(p[3], O_RDWR, F_WRLCK, sig);
	start_break(p[2], O_WRONLY);
	start_break(p[3], O_RDONLY);
	if (wl_sabotage())
		fcntl(rd, F_SETLEASE, F_UNLCK);
	int before = breaks;
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	int got[4] = {fcntl(rd, F_GETLEASE), fcntl(wr, F_GETLEASE), fcntl(brd, F_GETLEASE),
		      fcntl(bwr, F_GETLEASE)};
	wl_check(got[0] == F_RDLCK, "read-lease", "F_GETLEASE %d, want F_RDLCK", got[0]);
	wl_check(got[1] == F_WRLCK, "write-lease", "F_GETLEASE %d, want F_WRLCK", got[1]);
	wl_check(got[2] == F_UNLCK, "breaking-to-unlock", "F_GETLEASE %d, want F_UNLCK", got[2]);
	wl_check(got[3] == F_RDLCK, "breaking-to-read", "F_GETLEASE %d, want F_RDLCK", got[3]);
	wl_check(breaks == before, "no-restore-signal", "%d break signals before, %d now",
		 before, (int)breaks);

	pid_t k = fork();
	if (k == 0) {
		int fd = open(p[0], O_WRONLY | O_NONBLOCK);
		_exit(fd < 0 && errno == EWOULDBLOCK ? 0 : 1);
	}
	int st = 0;
	waitpid(k, &st, 0);
	double until = wl_now() + 5;
	while (breaks == before && wl_now() < until)
		wl_sleep(0.005);
	wl_check(WIFEXITED(st) && WEXITSTATUS(st) == 0 && breaks == before + 1 && last_fd == rd,
		 "break-signal", "child status %#x, %d signals (want %d), si_fd %d (want %d)", st,
		 (int)breaks, before + 1, (int)last_fd, rd);
	wl_finish();
}
