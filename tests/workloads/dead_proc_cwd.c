// dead_proc_cwd.c: a working directory in /proc/N of a process N that has exited (an
// unhashed /proc entry). The workload forks a child, enters /proc/CHILD, then kills and
// reaps the child. After SIGUSR2: getcwd still fails with ENOENT, /proc/self/cwd reads the
// same "/proc/N (deleted)", N is no process (the restorer's stand-in is gone), and the
// process can still leave for / by path. Sabotage: goes back to / before the dump -> `getcwd`,
// `cwd-link`.
// build:
//
// Usage: dead_proc_cwd PIDFILE
#include "wl.h"
#include <limits.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	pid_t k = fork();
	if (k < 0)
		wl_setup_fail("fork");
	if (k == 0) {
		pause();
		_exit(0);
	}
	char dir[64], before[PATH_MAX], now[PATH_MAX], buf[PATH_MAX];
	snprintf(dir, sizeof dir, "/proc/%d", (int)k);
	if (chdir(dir))
		wl_setup_fail("chdir /proc/CHILD");
	kill(k, SIGKILL);
	waitpid(k, NULL, 0);
	ssize_t n = readlink("/proc/self/cwd", before, sizeof before - 1);
	if (n < 0)
		wl_setup_fail("readlink /proc/self/cwd");
	before[n] = 0;
	printf("# cwd %s\n", before);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	if (wl_sabotage() && chdir("/"))
		wl_setup_fail("chdir /");
	wl_wait_usr2();

	errno = 0;
	char *g = getcwd(buf, sizeof buf);
	wl_check(!g && errno == ENOENT, "getcwd", "getcwd gave %s (errno %d)", g ? g : "NULL",
		 errno);
	n = readlink("/proc/self/cwd", now, sizeof now - 1);
	now[n < 0 ? 0 : n] = 0;
	wl_check(strcmp(now, before) == 0, "cwd-link", "%s, expected %s", now, before);
	wl_check(kill(k, 0) < 0 && errno == ESRCH, "dead-pid-free", "pid %d exists", (int)k);
	wl_check(chdir("/") == 0 && getcwd(buf, sizeof buf) && strcmp(buf, "/") == 0, "leave",
		 "chdir / then getcwd");
	wl_finish();
}
