// zombies.c: children that exited but were not reaped yet (zombies) survive dump/restore with
// their exit status: after restore the parent reaps each with the status it died with.
// build:
//
// Usage: zombies PIDFILE
// One child exits with code 7, another is killed by SIGTERM; the parent does not reap them
// before the pidfile. On SIGUSR2 it reaps both and checks PIDs and statuses.
#include "wl.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	pid_t a = fork();
	if (a == 0)
		_exit(7);
	pid_t b = fork();
	if (b == 0) {
		for (;;)
			pause();
	}
	kill(b, SIGTERM);
	// Both must be zombies before the pidfile: wait until /proc says so.
	for (int i = 0; i < 500; i++) {
		char path[64], buf[256];
		int z = 0;
		pid_t kids[2] = {a, b};
		for (int k = 0; k < 2; k++) {
			snprintf(path, sizeof path, "/proc/%d/stat", (int)kids[k]);
			FILE *f = fopen(path, "r");
			if (f && fgets(buf, sizeof buf, f) && strstr(buf, ") Z "))
				z++;
			if (f)
				fclose(f);
		}
		if (z == 2)
			break;
		usleep(2000);
	}
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	int st, fails = 0;
	pid_t w = waitpid(a, &st, WNOHANG);
	if (w == a && WIFEXITED(st) && WEXITSTATUS(st) == 7)
		printf("ok zombie-exit-code\n");
	else {
		printf("FAIL zombie-exit-code: waitpid %d status %#x\n", (int)w, st);
		fails++;
	}
	w = waitpid(b, &st, WNOHANG);
	if (w == b && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)
		printf("ok zombie-signal\n");
	else {
		printf("FAIL zombie-signal: waitpid %d status %#x\n", (int)w, st);
		fails++;
	}
	printf("# %s: %d check(s) failed\n", fails ? "FAILED" : "PASSED", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
