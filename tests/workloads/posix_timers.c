// posix_timers.c: POSIX timers (timer_create) survive dump/restore with their ids, clocks,
// signals, values and periods, and keep firing.
// build:
//
// Usage: posix_timers PIDFILE
// Timer A: CLOCK_MONOTONIC, SIGRTMIN with value 0x1234, every 20 ms (a handler counts it and
// checks si_value). Timer B: created then deleted (leaves a gap in the ids). Timer C:
// CLOCK_REALTIME, SIGEV_NONE, one-shot one hour ahead. After SIGUSR2: the ids are the same,
// timer_gettime of A shows a 20 ms period, A fires about 50 times a second with its value,
// C still has about an hour left.
// Timer D: CLOCK_MONOTONIC, SIGRTMIN+1 (blocked) with value 0x5678, every 1 ms from the start:
// its signal is pending with 200+ overruns by the time the pidfile appears. After SIGUSR2 it
// is still pending (sigtimedwait takes it at once) with its value, at least 199 overruns (at
// most one per ms since D started), timer_getoverrun says the same, and D keeps firing.
#include "wl.h"

static volatile long fired, bad_value;

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_value.sival_ptr != (void *)0x1234)
		bad_value++;
	fired++;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	struct sigaction sa = {.sa_sigaction = on_rt, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigaction(SIGRTMIN, &sa, NULL);

	timer_t a, b, c;
	struct sigevent ea = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN};
	ea.sigev_value.sival_ptr = (void *)0x1234;
	struct sigevent en = {.sigev_notify = SIGEV_NONE};
	if (timer_create(CLOCK_MONOTONIC, &ea, &a) || timer_create(CLOCK_MONOTONIC, &en, &b) ||
	    timer_create(CLOCK_REALTIME, &en, &c))
		return 3;
	timer_delete(b);
	struct itimerspec pa = {{0, 20000000}, {0, 20000000}};
	struct itimerspec pc = {{0, 0}, {3600, 0}};
	timer_settime(a, 0, &pa, NULL);
	timer_settime(c, 0, &pc, NULL);
	long ida = (long)(intptr_t)a, idc = (long)(intptr_t)c;
	sigset_t dset;
	sigemptyset(&dset);
	sigaddset(&dset, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &dset, NULL);
	timer_t d;
	struct sigevent ed = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1};
	ed.sigev_value.sival_ptr = (void *)0x5678;
	struct itimerspec pd = {{0, 1000000}, {0, 1000000}};
	struct timespec d0, d1;
	if (timer_create(CLOCK_MONOTONIC, &ed, &d))
		return 3;
	clock_gettime(CLOCK_MONOTONIC, &d0);
	timer_settime(d, 0, &pd, NULL);
	struct timespec w0 = {0, 210000000};
	while (nanosleep(&w0, &w0) && errno == EINTR)
		;

	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	int fails = 0;
	// D first, before time passes: its signal is still the one pending since before the dump.
	siginfo_t si;
	struct timespec zero = {0, 0};
	int got = sigtimedwait(&dset, &si, &zero);
	clock_gettime(CLOCK_MONOTONIC, &d1);
	long most = (d1.tv_sec - d0.tv_sec) * 1000 + (d1.tv_nsec - d0.tv_nsec) / 1000000 + 1;
	int gov = timer_getoverrun(d);
	if (got == SIGRTMIN + 1 && si.si_code == SI_TIMER && si.si_value.sival_ptr == (void *)0x5678 &&
	    si.si_overrun >= 199 && si.si_overrun <= most && gov == si.si_overrun)
		printf("ok timer-d-pending-overruns (%d)\n", si.si_overrun);
	else {
		printf("FAIL timer-d-pending-overruns: signal %d code %d value %p overrun %d (199..%ld) getoverrun %d\n",
		       got, si.si_code, si.si_value.sival_ptr, si.si_overrun, most, gov);
		fails++;
	}
	struct timespec fifty = {0, 50000000};
	if (sigtimedwait(&dset, &si, &fifty) == SIGRTMIN + 1)
		printf("ok timer-d-firing\n");
	else {
		printf("FAIL timer-d-firing: no signal from D within 50 ms\n");
		fails++;
	}
	struct itimerspec g;
	if (timer_gettime(a, &g) == 0 && g.it_interval.tv_sec == 0 && g.it_interval.tv_nsec == 20000000)
		printf("ok timer-a-interval\n");
	else {
		printf("FAIL timer-a-interval: id %ld\n", ida);
		fails++;
	}
	long before = fired;
	struct timespec w = {0, 300000000};
	while (nanosleep(&w, &w) && errno == EINTR)
		;
	long n = fired - before;
	if (n >= 5 && n <= 30 && !bad_value)
		printf("ok timer-a-firing (%ld in 300 ms)\n", n);
	else {
		printf("FAIL timer-a-firing: %ld in 300 ms, %ld with a wrong value\n", n, bad_value);
		fails++;
	}
	if (timer_gettime(c, &g) == 0 && g.it_value.tv_sec > 3500 && g.it_value.tv_sec <= 3600)
		printf("ok timer-c-left\n");
	else {
		printf("FAIL timer-c-left: id %ld, %ld s left\n", idc, (long)g.it_value.tv_sec);
		fails++;
	}
	// The gap left by timer B is still a gap: deleting its id fails.
	if (timer_delete(b) != 0)
		printf("ok timer-ids\n");
	else {
		printf("FAIL timer-ids: the deleted timer's id exists again\n");
		fails++;
	}
	printf("# %s: %d check(s) failed\n", fails ? "FAILED" : "PASSED", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
