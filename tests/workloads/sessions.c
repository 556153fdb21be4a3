// sessions.c: sessions and process groups whose leader has exited.
// build:
//
// The parent R is a child subreaper. It forks A, which calls setsid() (a new session and
// process group, both A), forks B and exits: B lives on in session A, group A, whose leader
// is gone, and is reparented to R. R also forks C, which makes its own process group in R's
// session (setpgid(0, 0)), forks D and exits: D lives on in group C, leader gone. R reaps A
// and C. After restore and SIGUSR2, R checks B and D: parent R, session and group as before
// (getsid/getpgid), and that the helpers restore needed are gone (no zombie with A's or C's
// pid); then it tells B and D to exit and reaps them with their codes.
//
// Usage: sessions PIDFILE
#include "wl.h"
#include <sys/prctl.h>
#include <sys/wait.h>

static int go[2], rep[2];

/* A grandchild: report our pid, wait for "go", exit with `code`. */
static void grandchild(int code)
{
	pid_t me = getpid();
	if (write(rep[1], &me, sizeof me) != sizeof me)
		_exit(9);
	char c;
	if (read(go[0], &c, 1) != 1)
		_exit(8);
	_exit(code);
}

static pid_t ppid_of(pid_t p)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *s = strrchr(buf, ')');
	int pp = -1;
	if (s)
		sscanf(s + 2, "%*c %d", &pp);
	return pp;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) || pipe(go) || pipe(rep))
		wl_setup_fail("setup");
	pid_t a = fork();
	if (a == 0) {
		if (setsid() < 0)
			_exit(7);
		if (fork() == 0)
			grandchild(21);
		_exit(0);
	}
	pid_t c = fork();
	if (c == 0) {
		if (setpgid(0, 0))
			_exit(7);
		if (fork() == 0)
			grandchild(22);
		_exit(0);
	}
	int st;
	if (a < 0 || c < 0 || waitpid(a, &st, 0) != a || st != 0 || waitpid(c, &st, 0) != c ||
	    st != 0)
		wl_setup_fail("helpers");
	pid_t kids[2];
	if (read(rep[0], &kids[0], sizeof kids[0]) != sizeof kids[0] ||
	    read(rep[0], &kids[1], sizeof kids[1]) != sizeof kids[1])
		wl_setup_fail("grandchildren");
	pid_t b = getsid(kids[0]) == a ? kids[0] : kids[1];
	pid_t d = b == kids[0] ? kids[1] : kids[0];
	// Both reparented to us before we go on.
	double until = wl_now() + 10;
	while ((ppid_of(b) != getpid() || ppid_of(d) != getpid()) && wl_now() < until)
		wl_sleep(0.001);

	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	wl_check(ppid_of(b) == getpid() && ppid_of(d) == getpid(), "parents",
		 "ppid of B %d, of D %d", (int)ppid_of(b), (int)ppid_of(d));
	wl_check(getsid(b) == a && getpgid(b) == a, "session-of-exited-leader",
		 "B: sid %d pgid %d, want %d", (int)getsid(b), (int)getpgid(b), (int)a);
	wl_check(getsid(d) == getsid(0) && getpgid(d) == c, "group-of-exited-leader",
		 "D: sid %d (want %d) pgid %d (want %d)", (int)getsid(d), (int)getsid(0),
		 (int)getpgid(d), (int)c);
	wl_check(kill(a, 0) < 0 && kill(c, 0) < 0, "no-helpers-left",
		 "a process with pid %d or %d exists", (int)a, (int)c);
	if (write(go[1], "gg", 2) != 2)
		wl_setup_fail("go");
	int sb, sd;
	wl_check(waitpid(b, &sb, 0) == b && WIFEXITED(sb) && WEXITSTATUS(sb) == 21, "reap-b",
		 "status %#x", sb);
	wl_check(waitpid(d, &sd, 0) == d && WIFEXITED(sd) && WEXITSTATUS(sd) == 22, "reap-d",
		 "status %#x", sd);
	wl_finish();
}
