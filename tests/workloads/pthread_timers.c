// pthread_timers.c: POSIX timers that notify a thread, not the process (zdtm pthread_timers).
// Timer A is glibc's SIGEV_THREAD: to the kernel a SIGEV_SIGNAL|SIGEV_THREAD_ID timer sending
// signal 32 (SIGTIMER) to glibc's helper thread, which starts a thread running the callback
// at each expiry. Timer B is made with the raw timer_create syscall as SIGEV_THREAD_ID,
// SIGRTMIN+3 aimed at worker thread W. /proc/PID/timers shows both as `signal/tid.N`.
// Main and W both leave SIGRTMIN+3 unblocked, so a timer restored as process-directed
// would have its signals taken by main (the kernel prefers the leader), and signal 32 sent
// to the process would never reach the helper: no callback runs (where main has no handler
// for 32, it kills the process).
// build: -pthread -lrt
//
// Usage: pthread_timers PIDFILE
// After SIGUSR2: both timers keep their 20 ms period; over 500 ms A's callback runs again
// (not on main) with its sigval, B's signals keep arriving, all in W, none in another thread.
#include "wl.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define PERIOD_NS 20000000L

static atomic_long cb_count, cb_bad;
static atomic_long b_good, b_bad;
static atomic_int w_tid;
static pid_t main_tid;
static int marker;

static void on_expire(union sigval v)
{
	if (v.sival_ptr != &marker || (pid_t)syscall(SYS_gettid) == main_tid)
		atomic_fetch_add(&cb_bad, 1);
	atomic_fetch_add(&cb_count, 1);
}

static void on_b(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if ((pid_t)syscall(SYS_gettid) == atomic_load(&w_tid) && si->si_value.sival_int == 4242)
		atomic_fetch_add(&b_good, 1);
	else
		atomic_fetch_add(&b_bad, 1);
}

static void *worker(void *arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	atomic_store(&w_tid, (int)syscall(SYS_gettid));
	for (;;) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int period_ok(timer_t t, long *got)
{
	struct itimerspec cur;
	*got = -1;
	if (timer_gettime(t, &cur))
		return 0;
	*got = cur.it_interval.tv_sec * 1000000000L + cur.it_interval.tv_nsec;
	return *got == PERIOD_NS;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	main_tid = (pid_t)syscall(SYS_gettid);
	struct sigaction sa = {.sa_sigaction = on_b, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGRTMIN + 3, &sa, NULL))
		wl_setup_fail("sigaction");
	pthread_t w;
	if (pthread_create(&w, NULL, worker, NULL))
		wl_setup_fail("pthread_create");
	while (!atomic_load(&w_tid))
		wl_sleep(0.001);

	timer_t a;
	struct sigevent ea;
	memset(&ea, 0, sizeof ea);
	ea.sigev_notify = SIGEV_THREAD;
	ea.sigev_notify_function = on_expire;
	ea.sigev_value.sival_ptr = &marker;
	if (timer_create(CLOCK_MONOTONIC, &ea, &a))
		wl_setup_fail("timer_create(SIGEV_THREAD)");

	// struct sigevent as the kernel reads it: value, signo, notify, tid.
	struct {
		union sigval value;
		int signo, notify, tid, pad[11];
	} eb;
	memset(&eb, 0, sizeof eb);
	eb.value.sival_int = 4242;
	eb.signo = SIGRTMIN + 3;
	eb.notify = SIGEV_THREAD_ID;
	eb.tid = atomic_load(&w_tid);
	int bid = -1;
	if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &eb, &bid))
		wl_setup_fail("timer_create(SIGEV_THREAD_ID)");
	timer_t b = (timer_t)(intptr_t)bid;

	struct itimerspec p = {{0, PERIOD_NS}, {0, PERIOD_NS}};
	if (timer_settime(a, 0, &p, NULL) || timer_settime(b, 0, &p, NULL))
		wl_setup_fail("timer_settime");
	double t0 = wl_now();
	while (atomic_load(&cb_count) < 3 || atomic_load(&b_good) < 3) {
		if (wl_now() - t0 > 5) {
			errno = ETIMEDOUT;
			wl_setup_fail("timers did not fire before the dump");
		}
		wl_sleep(0.005);
	}
	char timers[2048];
	if (wl_read_file("/proc/self/timers", timers, sizeof timers) > 0)
		for (char *l = strtok(timers, "\n"); l; l = strtok(NULL, "\n"))
			if (!strncmp(l, "notify:", 7))
				printf("# %s\n", l);
	printf("# main %d worker %d; before: callbacks %ld, B signals %ld (bad %ld)\n", (int)main_tid,
	       atomic_load(&w_tid), atomic_load(&cb_count), atomic_load(&b_good), atomic_load(&b_bad));
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	long cb0 = atomic_load(&cb_count), good0 = atomic_load(&b_good), bad0 = atomic_load(&b_bad),
	     cbbad0 = atomic_load(&cb_bad);
	wl_sleep(0.5);
	long cb = atomic_load(&cb_count) - cb0, good = atomic_load(&b_good) - good0,
	     bad = atomic_load(&b_bad) - bad0, cbbad = atomic_load(&cb_bad) - cbbad0;
	printf("# after restore, 500 ms: callbacks %ld, B signals in W %ld, elsewhere %ld\n", cb, good,
	       bad);
	long got = -1;
	wl_check(period_ok(a, &got), "sigev-thread-period", "interval %ld ns", got);
	wl_check(period_ok(b, &got), "thread-id-period", "interval %ld ns", got);
	wl_check(cb >= 5, "sigev-thread-fires", "%ld callbacks in 500 ms", cb);
	wl_check(cbbad == 0, "sigev-thread-callback", "%ld callbacks on main or with a wrong sigval",
		 cbbad);
	wl_check(good >= 5, "thread-id-fires", "%ld signals in the target thread in 500 ms", good);
	wl_check(bad == 0, "thread-id-right-thread", "%ld signals taken by another thread", bad);
	timer_delete(a);
	timer_delete(b);
	wl_finish();
}
