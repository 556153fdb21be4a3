// fown.c: a pipe whose read end signals its owner on input (O_ASYNC, F_SETOWN to this
// process, F_SETSIG SIGRTMIN+1), set while the process ran under another effective uid (the
// kernel records who set the owner). After restore: the same owner, signal and setter uids,
// O_ASYNC still set, and writing into the pipe still sends the signal, with si_fd naming the
// read end.
//
// Usage: fown PIDFILE   (as root)
#include "wl.h"

static volatile sig_atomic_t got, got_fd;

static void on_io(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	got++;
	got_fd = si->si_fd;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	struct sigaction sa = {.sa_sigaction = on_io, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigemptyset(&sa.sa_mask);
	int p[2];
	if (sigaction(SIGRTMIN + 1, &sa, NULL) || pipe(p))
		wl_setup_fail("sigaction, pipe");
	if (setresuid(-1, 4321, -1))
		wl_setup_fail("seteuid");
	if (fcntl(p[0], F_SETOWN, getpid()) || fcntl(p[0], F_SETSIG, SIGRTMIN + 1) ||
	    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC))
		wl_setup_fail("owner");
	if (setresuid(-1, 0, -1))
		wl_setup_fail("seteuid back");
	uid_t before[2];
	if (fcntl(p[0], 17 /* F_GETOWNER_UIDS */, before))
		wl_setup_fail("F_GETOWNER_UIDS");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	uid_t after[2] = {0};
	wl_check(fcntl(p[0], F_GETOWN) == getpid() && fcntl(p[0], F_GETSIG) == SIGRTMIN + 1, "owner",
		 "owner %d signal %d", fcntl(p[0], F_GETOWN), fcntl(p[0], F_GETSIG));
	wl_check(fcntl(p[0], 17, after) == 0 && after[0] == before[0] && after[1] == before[1] && after[1] == 4321,
		 "setter-uids", "%u/%u, were %u/%u", after[0], after[1], before[0], before[1]);
	wl_check(fcntl(p[0], F_GETFL) & O_ASYNC, "o-async", "O_ASYNC lost");
	got = 0;
	if (write(p[1], "x", 1) != 1)
		wl_setup_fail("write");
	for (int i = 0; i < 200 && !got; i++)
		wl_sleep(0.005);
	wl_check(got >= 1 && got_fd == p[0], "signal-on-input", "%d signals, si_fd %d", (int)got, (int)got_fd);
	wl_finish();
}
