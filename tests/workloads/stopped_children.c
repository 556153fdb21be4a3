// stopped_children.c: children in states zdtm's zombie and stopped tests found wrong: K
// killed by SIGKILL and left unreaped (a zombie whose killing signal is SIGKILL: a traced
// task dies at once on it), T stopped by SIGTSTP (default action; its parent has not waited
// for the stop yet, so waitpid(WUNTRACED) after restore must report SIGTSTP, not the SIGSTOP
// a restorer would use), and S stopped by SIGSTOP and then sent SIGSTOP again while stopped
// (the second one stays pending: it cannot be blocked, so a dumper that leaves it pending
// runs into it at its first remote syscall).
// build:
//
// Usage: stopped_children PIDFILE
// After SIGUSR2: waitid on K gives CLD_KILLED with SIGKILL; T is still stopped and
// waitpid(WUNTRACED) reports WSTOPSIG SIGTSTP, then after SIGCONT it exits 5 when told; S is
// still stopped (nothing read from it), and after SIGCONT it answers and exits 6.
#include "wl.h"
#include <poll.h>
#include <sys/wait.h>

static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (wl_read_file(path, buf, sizeof buf) <= 0)
		return '?';
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Up to 10 s: a machine busy compiling is slow to schedule a fresh child. */
static int wait_state(pid_t pid, char want)
{
	for (int i = 0; i < 5000; i++) {
		if (proc_state(pid) == want)
			return 1;
		wl_sleep(0.002);
	}
	return 0;
}

static int sigstop_pending(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (wl_read_file(path, buf, sizeof buf) <= 0)
		return 0;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (!strncmp(l, "ShdPnd:", 7) || !strncmp(l, "SigPnd:", 7))
			if (strtoull(l + 7, NULL, 16) & (1ull << (SIGSTOP - 1)))
				return 1;
	return 0;
}

/* waitpid(pid, opts|WNOHANG) retried for up to `sec` seconds. */
static pid_t wait_for(pid_t pid, int *st, int opts, double sec)
{
	double end = wl_now() + sec;
	for (;;) {
		pid_t w = waitpid(pid, st, opts | WNOHANG);
		if (w != 0 || wl_now() > end)
			return w;
		wl_sleep(0.005);
	}
}

/* A child that waits for one byte on `in`, answers on `out` (if >= 0) and exits `code`. */
static pid_t child(int in, int out, int code)
{
	pid_t p = fork();
	if (p < 0)
		wl_setup_fail("fork");
	if (p == 0) {
		char c;
		while (read(in, &c, 1) < 0 && errno == EINTR)
			;
		if (out >= 0 && write(out, "s", 1) != 1)
			_exit(99);
		_exit(code);
	}
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int to_t[2], to_s[2], from_s[2], to_k[2];
	if (pipe(to_t) || pipe(to_s) || pipe(from_s) || pipe(to_k))
		wl_setup_fail("pipe");

	pid_t k = child(to_k[0], -1, 0);
	pid_t t = child(to_t[0], -1, 5);
	pid_t s = child(to_s[0], from_s[1], 6);

	if (kill(k, SIGKILL) || !wait_state(k, 'Z'))
		wl_setup_fail("K did not become a zombie");
	if (kill(t, SIGTSTP) || !wait_state(t, 'T'))
		wl_setup_fail("T did not stop on SIGTSTP");
	if (kill(s, SIGSTOP) || !wait_state(s, 'T'))
		wl_setup_fail("S did not stop");
	if (kill(s, SIGSTOP) || !sigstop_pending(s)) {
		errno = EINVAL;
		wl_setup_fail("the second SIGSTOP is not pending in S");
	}
	printf("# K %d (zombie, SIGKILL), T %d (SIGTSTP), S %d (SIGSTOP, one more pending)\n", (int)k,
	       (int)t, (int)s);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	siginfo_t si;
	memset(&si, 0, sizeof si);
	int r = waitid(P_PID, k, &si, WEXITED | WNOHANG);
	wl_check(r == 0 && si.si_pid == k && si.si_code == CLD_KILLED && si.si_status == SIGKILL,
		 "killed-zombie", "waitid %d pid %d code %d status %d", r, (int)si.si_pid, si.si_code,
		 si.si_status);

	wl_check(proc_state(t) == 'T', "tstp-stopped", "T's state %c", proc_state(t));
	int st = 0;
	pid_t w = wait_for(t, &st, WUNTRACED, 3);
	wl_check(w == t && WIFSTOPPED(st) && WSTOPSIG(st) == SIGTSTP, "stop-signal",
		 "waitpid %d status %#x (stop signal %d, want %d)", (int)w, st,
		 WIFSTOPPED(st) ? WSTOPSIG(st) : 0, SIGTSTP);
	kill(t, SIGCONT);
	if (write(to_t[1], "x", 1) != 1)
		wl_fail("tstp-continues", "write to T");
	st = 0;
	w = wait_for(t, &st, 0, 3);
	wl_check(w == t && WIFEXITED(st) && WEXITSTATUS(st) == 5, "tstp-continues",
		 "waitpid %d status %#x", (int)w, st);

	wl_check(proc_state(s) == 'T', "sigstop-stopped", "S's state %c", proc_state(s));
	if (write(to_s[1], "x", 1) != 1)
		wl_fail("sigstop-still-stopped", "write to S");
	struct pollfd pf = {.fd = from_s[0], .events = POLLIN};
	int n = poll(&pf, 1, 200);
	wl_check(n == 0, "sigstop-still-stopped", "S answered while it should be stopped (poll %d)", n);
	kill(s, SIGCONT);
	char c = 0;
	n = poll(&pf, 1, 3000);
	wl_check(n == 1 && read(from_s[0], &c, 1) == 1 && c == 's', "sigstop-continues",
		 "poll %d read %c", n, c);
	st = 0;
	w = wait_for(s, &st, 0, 3);
	wl_check(w == s && WIFEXITED(st) && WEXITSTATUS(st) == 6, "sigstop-exit", "waitpid %d status %#x",
		 (int)w, st);
	wl_finish();
}
