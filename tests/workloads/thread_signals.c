// thread_signals.c: signals pending on a thread other than the main one (a runtime's
// thread-directed preemption signal, say) are delivered to that thread after restore, with
// their data.
// build: -pthread
//
// A worker thread blocks SIGUSR1 and SIGRTMIN+2; main sends it SIGUSR1 (pthread_kill: a
// tgkill, si_code SI_TKILL) and SIGRTMIN+2 twice with values (pthread_sigqueue, SI_QUEUE),
// then the worker waits on a pipe. After restore and SIGUSR2 main wakes it; it takes its
// pending signals with sigtimedwait and checks: SIGUSR1 from our pid, then
// both SIGRTMIN+2 with values 41 and 42, in order; then nothing more is pending.
//
// Usage: thread_signals PIDFILE
#include "wl.h"
#include <pthread.h>

static int go[2], rep[2];

static void *worker(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	char c = 'r';
	if (write(rep[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
		_exit(5);
	struct timespec zero = { 0, 0 };
	siginfo_t a, b, d;
	char res = 'o';
	// (si_code of a tgkill differs between kernels: SI_TKILL or SI_USER; not checked)
	if (sigtimedwait(&set, &a, &zero) != SIGUSR1 || a.si_pid != getpid())
		res = '1';
	else if (sigtimedwait(&set, &b, &zero) != SIGRTMIN + 2 || b.si_code != SI_QUEUE ||
		 b.si_value.sival_int != 41)
		res = '2';
	else if (sigtimedwait(&set, &d, &zero) != SIGRTMIN + 2 || d.si_value.sival_int != 42)
		res = '3';
	else if (sigtimedwait(&set, &d, &zero) != -1)
		res = '4';
	if (write(rep[1], &res, 1) != 1)
		_exit(6);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	if (pipe(go) || pipe(rep))
		wl_setup_fail("pipe");
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL))
		wl_setup_fail("pthread_create");
	char c;
	if (read(rep[0], &c, 1) != 1)
		wl_setup_fail("worker start");
	if (pthread_kill(t, SIGUSR1) ||
	    pthread_sigqueue(t, SIGRTMIN + 2, (union sigval){ .sival_int = 41 }) ||
	    pthread_sigqueue(t, SIGRTMIN + 2, (union sigval){ .sival_int = 42 }))
		wl_setup_fail("signals to the worker");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	if (write(go[1], "g", 1) != 1 || read(rep[0], &c, 1) != 1)
		wl_setup_fail("worker pipe");
	wl_check(c == 'o', "worker-pending-signals",
		 "worker reported %c (1: SIGUSR1, 2/3: the queued values, 4: an extra signal)", c);
	pthread_join(t, NULL);
	wl_finish();
}
