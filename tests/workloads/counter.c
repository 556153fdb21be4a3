// counter.c: continuity of a running, statically linked process.
// build: -static
//
// Prints "tick N" every 20 ms, N = 0, 1, 2, ... (flushed per line). On
// SIGUSR2 it prints "done N", where N is the number of ticks printed so far
// (so the ticks were 0..N-1), and exits 0. The harness concatenates the
// output from before the dump and after the restore and checks that the
// ticks are consecutive: nothing lost, nothing repeated. That proves the
// restored process resumed exactly where it was frozen (registers, stack,
// the counter in memory, stdio buffer state) rather than restarting or
// replaying. Static linking matters because a static binary has no
// ld.so/libc mappings: the restorer must not assume they exist.
//
// Usage: counter PIDFILE
// WL_SABOTAGE=1: skips tick 5 (as a restore that lost 20 ms of the program's
// life would); the harness's continuity check must then fail.
#include "wl.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	wl_write_pidfile(argv[1]);

	double deadline = wl_now() + wl_timeout_sec();
	long n = 0;
	for (;;) {
		printf("tick %ld\n", n);
		fflush(stdout);
		n++;
		if (n == 5 && wl_sabotage())
			n++;
		/* a relative 20 ms sleep: after a restore we simply carry on,
		 * no burst of catch-up ticks */
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL); /* EINTR (SIGUSR2, checkpoint): fine */
		if (wl_usr2_count)
			break;
		if (wl_now() > deadline)
			wl_timeout();
	}
	printf("done %ld\n", n);
	fflush(stdout);
	return 0;
}
