// sample-job.c: the bundled example job for `scripts/demo.sh`. A long computation that keeps
// its progress only in memory: a running FNV-1a hash over 60 steps, one step every 100 ms,
// printing each step. If it is dumped, killed and restored, it continues from the step it was
// at and ends with the same final hash as an uninterrupted run.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 60;
	uint64_t h = 1469598103934665603ULL;
	char *work = malloc(1 << 20);
	for (int i = 0; i < (1 << 20); i++)
		work[i] = (char)(i * 7);
	for (int step = 1; step <= steps; step++) {
		for (int i = 0; i < (1 << 20); i++) {
			h ^= (uint8_t)work[i] + step;
			h *= 1099511628211ULL;
		}
		printf("pid %d step %d/%d hash %016llx\n", getpid(), step, steps, (unsigned long long)h);
		fflush(stdout);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	printf("final hash %016llx\n", (unsigned long long)h);
	return 0;
}
