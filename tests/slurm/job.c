// job.c: the computation the Slurm integration test (crates/stasis-cli/tests/slurm.rs) runs
// under `stasis run` in a preemptible, requeued batch job.
//
//     job WORKLOG [STEPS]
//
// A deterministic computation that keeps its progress only in memory: a running FNV-1a hash
// over a 1 MiB buffer, STEPS (default 80) steps of about 100 ms each. After every step it
// appends `step K/STEPS hash H` to WORKLOG (opened O_APPEND once, at the start: a restored job
// keeps writing to the same open file, and every run's lines end up in it, in order). At the
// end it prints `final hash H` on stdout and exits 0.
//
// Without checkpoints a rerun would start again at `step 1`; restored from a checkpoint it
// continues with the step after the one it was at, and its lines equal an uninterrupted run's.
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s WORKLOG [STEPS]\n", argv[0]);
		return 2;
	}
	int steps = argc > 2 ? atoi(argv[2]) : 80;
	int log = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (log < 0) {
		perror(argv[1]);
		return 1;
	}
	uint64_t h = 1469598103934665603ULL;
	unsigned char *work = malloc(1 << 20);
	if (!work)
		return 1;
	for (int i = 0; i < (1 << 20); i++)
		work[i] = (unsigned char)(i * 7);
	for (int step = 1; step <= steps; step++) {
		for (int i = 0; i < (1 << 20); i++) {
			h ^= (uint8_t)(work[i] + step);
			h *= 1099511628211ULL;
		}
		work[step % (1 << 20)] ^= (unsigned char)h; // the state is more than the hash
		char line[96];
		int n = snprintf(line, sizeof line, "step %d/%d hash %016llx\n", step, steps,
				 (unsigned long long)h);
		// One write per line: with O_APPEND a line is never torn or interleaved.
		if (write(log, line, (size_t)n) != n) {
			perror("write");
			return 1;
		}
		struct timespec ts = {0, 100 * 1000 * 1000};
		while (nanosleep(&ts, &ts) != 0)
			; // a stop/continue (checkpoint) interrupts the sleep; finish it
	}
	printf("final hash %016llx\n", (unsigned long long)h);
	fflush(stdout);
	return 0;
}
