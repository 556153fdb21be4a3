// tree.c: a small process tree survives dump/kill/restore with its shape and what its members
// share.
// build:
//
// The parent forks three children (one of which forks a grandchild), all sharing one pipe
// (inherited across fork: the same open file description) and a MAP_SHARED|MAP_ANONYMOUS
// page. At dump time the parent is blocked in waitpid() on its first child, the children in
// read() on a pipe from the parent or in nanosleep loops, the grandchild in pause().
// After restore, SIGUSR2 to the parent: its handler (SA_RESTART) tells the tree to finish;
// every member checks its PID and parent PID are the ones it had, writes a report line into
// the shared pipe, and exits with a known code; the parent's waitpid() restarts and must reap
// each child with its code, then it checks the reports and the shared page.
//
// Usage: tree PIDFILE
#include "wl.h"
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static int report[2];   // children -> parent reports
static int wake[2];     // parent -> first child: "finish"
static volatile int *shared;
static pid_t kids[3];

static void on_usr2(int sig)
{
	(void)sig;
	// async-signal-safe: wake the first child through its pipe, signal the others.
	if (write(wake[1], "w", 1) != 1)
		_exit(9);
	kill(kids[1], SIGUSR2);
	kill(kids[2], SIGUSR2);
}

static volatile sig_atomic_t child_go;
static void child_usr2(int sig)
{
	(void)sig;
	child_go = 1;
}

static void child_report(int idx, pid_t want_pid, pid_t want_ppid)
{
	char line[128];
	int ok = getpid() == want_pid && getppid() == want_ppid;
	int n = snprintf(line, sizeof line, "%s child%d pid %d ppid %d\n", ok ? "ok" : "FAIL",
			 idx, (int)getpid(), (int)getppid());
	if (write(report[1], line, n) != n)
		_exit(8);
	__sync_fetch_and_add(&shared[idx + 1], 1);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	if (pipe(report) || pipe(wake))
		return 3;
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return 3;
	shared[0] = 4242;
	pid_t me = getpid();
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	// child 0: blocked in read() on the wake pipe
	if ((kids[0] = fork()) == 0) {
		char c;
		while (read(wake[0], &c, 1) < 0 && errno == EINTR)
			;
		child_report(0, getpid(), me);
		_exit(10);
	}
	// child 1: nanosleep loop until SIGUSR2
	if ((kids[1] = fork()) == 0) {
		signal(SIGUSR2, child_usr2);
		prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
		pid_t self = getpid();
		while (!child_go)
			usleep(20000);
		int pd = 0;
		prctl(PR_GET_PDEATHSIG, &pd, 0, 0, 0);
		child_report(pd == SIGTERM ? 1 : 98, self, me);
		_exit(11);
	}
	// child 2: forks a grandchild (in pause()), waits for SIGUSR2, then ends the grandchild
	if ((kids[2] = fork()) == 0) {
		signal(SIGUSR2, child_usr2);
		pid_t self = getpid();
		pid_t g = fork();
		if (g == 0) {
			signal(SIGUSR2, child_usr2);
			while (!child_go)
				pause();
			child_report(2, getpid(), self);
			_exit(13);
		}
		while (!child_go)
			usleep(20000);
		kill(g, SIGUSR2);
		int st;
		pid_t w = waitpid(g, &st, 0);
		int ok = w == g && WIFEXITED(st) && WEXITSTATUS(st) == 13;
		child_report(ok ? 3 : 99, self, me);
		_exit(12);
	}
	struct sigaction sa = {.sa_handler = on_usr2, .sa_flags = SA_RESTART};
	sigaction(SIGUSR2, &sa, NULL);
	usleep(150000); // let every member reach its blocking call
	wl_write_pidfile(argv[1]);

	int fails = 0;
	int codes[3] = {10, 11, 12};
	for (int i = 0; i < 3; i++) {
		int st;
		pid_t w;
		while ((w = waitpid(kids[i], &st, 0)) < 0 && errno == EINTR)
			;
		if (w == kids[i] && WIFEXITED(st) && WEXITSTATUS(st) == codes[i]) {
			printf("ok wait child%d\n", i);
		} else {
			printf("FAIL wait child%d: waitpid %d status %#x\n", i, (int)w, st);
			fails++;
		}
	}
	close(report[1]);
	char buf[1024];
	ssize_t n, total = 0;
	while ((n = read(report[0], buf + total, sizeof buf - 1 - total)) > 0)
		total += n;
	buf[total] = 0;
	fputs(buf, stdout);
	int lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	if (lines != 4 || strstr(buf, "FAIL")) {
		printf("FAIL reports: %d lines\n", lines);
		fails++;
	}
	int sub = 0;
	prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
	if (sub == 1)
		printf("ok subreaper\n");
	else {
		printf("FAIL subreaper\n");
		fails++;
	}
	if (shared[0] != 4242 || shared[1] != 1 || shared[2] != 1 || shared[3] != 1 || shared[4] != 1) {
		printf("FAIL shared-page: %d %d %d %d %d\n", shared[0], shared[1], shared[2], shared[3], shared[4]);
		fails++;
	} else {
		printf("ok shared-page\n");
	}
	printf("# %s: %d check(s) failed\n", fails ? "FAILED" : "PASSED", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
