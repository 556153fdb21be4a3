// run_job.c: a batch job for `stasis run`: a long computation whose progress lives only in
// memory, so only a restore (not a restart) can avoid redoing work.
//
// Usage: run_job STEPS MIB STEP_MS WORKLOG [THREADS]
// Holds MIB MiB of state. Each step rewrites 1 MiB of it (a different slice per step) from a
// running FNV-1a hash, appends "step K" to WORKLOG (opened once, O_APPEND: the file counts
// the steps executed across every run, redone ones included), prints "step K/STEPS" on
// stdout and sleeps STEP_MS ms. At the end it prints the largest CLOCK_MONOTONIC gap seen
// between two steps ("max gap MS ms": a restore that let the clock jump shows here) and
// "final hash H", which equals an uninterrupted run's only if no state was lost.
// With THREADS, that many more threads tick beside the computation; each must have ticked
// again in the last steps ("threads N ticking"), so a thread lost by a restore shows.
// build: -pthread
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile long ticks[64];

static void *ticker(void *arg)
{
	volatile long *t = arg;
	for (;;) {
		struct timespec ts = {0, 5000000L};
		nanosleep(&ts, NULL);
		(*t)++;
	}
	return NULL;
}

static double mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: run_job STEPS MIB STEP_MS WORKLOG [THREADS]\n");
		return 3;
	}
	int nthreads = argc == 6 ? atoi(argv[5]) : 0;
	if (nthreads < 0 || nthreads > 64)
		return 3;
	for (int i = 0; i < nthreads; i++) {
		pthread_t th;
		if (pthread_create(&th, NULL, ticker, (void *)&ticks[i]))
			return 3;
	}
	long seen[64] = {0};
	int steps = atoi(argv[1]);
	size_t mib = (size_t)atoi(argv[2]);
	int step_ms = atoi(argv[3]);
	int log = open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (log < 0 || mib == 0) {
		perror("run_job: setup");
		return 3;
	}
	size_t len = mib << 20;
	uint8_t *mem = malloc(len);
	if (!mem)
		return 3;
	for (size_t i = 0; i < len; i++)
		mem[i] = (uint8_t)(i * 7 + (i >> 20));
	uint64_t h = 1469598103934665603ULL;
	double last = mono_ms(), max_gap = 0;
	for (int step = 1; step <= steps; step++) {
		if (step == steps - 2)
			for (int i = 0; i < nthreads; i++)
				seen[i] = ticks[i];
		uint8_t *slice = mem + ((size_t)(step - 1) % mib << 20);
		for (size_t i = 0; i < (1u << 20); i++) {
			h ^= slice[i] + (uint64_t)step;
			h *= 1099511628211ULL;
			slice[i] = (uint8_t)(h >> 29);
		}
		char line[64];
		int n = snprintf(line, sizeof line, "step %d\n", step);
		if (write(log, line, n) != n)
			return 3;
		printf("step %d/%d\n", step, steps);
		fflush(stdout);
		struct timespec ts = {step_ms / 1000, (step_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0)
			;
		double now = mono_ms();
		if (now - last > max_gap)
			max_gap = now - last;
		last = now;
	}
	uint64_t all = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i += 4096) {
		all ^= mem[i];
		all *= 1099511628211ULL;
	}
	int ticking = 0;
	for (int i = 0; i < nthreads; i++)
		ticking += ticks[i] > seen[i];
	if (nthreads)
		printf("threads %d ticking\n", ticking);
	printf("max gap %.0f ms\n", max_gap);
	printf("final hash %016llx %016llx\n", (unsigned long long)h, (unsigned long long)all);
	return 0;
}
