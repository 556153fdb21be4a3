// tty_job.c: a job started from a terminal comes back attached to the restore command's
// terminal.
// build:
//
// Prints its terminal's name, then "tick N" every 20 ms on its stdout (a terminal). After
// restore and SIGUSR2 it checks that stdin and stdout are still terminals, writes "via
// /dev/tty" to its controlling terminal (the harness expects it on the restore command's
// terminal), prints "ready on NAME", reads one line from stdin and prints "echo: LINE".
//
// Usage: tty_job PIDFILE
#include "wl.h"
#include <fcntl.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	if (!isatty(0) || !isatty(1))
		wl_setup_fail("stdin and stdout must be a terminal");
	printf("started on %s\n", ttyname(1));
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	double deadline = wl_now() + wl_timeout_sec();
	for (long n = 0; !wl_usr2_count; n++) {
		printf("tick %ld\n", n);
		fflush(stdout);
		wl_sleep(0.02);
		if (wl_now() > deadline)
			wl_timeout();
	}
	wl_check(isatty(0) && isatty(1), "still-a-terminal", "stdin or stdout is no terminal");
	int t = open("/dev/tty", O_RDWR);
	wl_check(t >= 0 && write(t, "via /dev/tty\n", 13) == 13, "controlling-terminal",
		 "/dev/tty: %s", strerror(errno));
	printf("ready on %s\n", ttyname(1));
	fflush(stdout);
	char line[128];
	if (!fgets(line, sizeof line, stdin))
		wl_setup_fail("reading the terminal");
	line[strcspn(line, "\n")] = 0;
	printf("echo: %s\n", line);
	wl_finish();
}
