// blocking.c: a process frozen INSIDE a blocking syscall resumes it
// correctly after restore.
// build:
//
// Why it matters: most real processes are dumped while blocked in the
// kernel. The kernel interrupts the syscall for the freeze and would
// normally restart it transparently (-ERESTARTSYS / -ERESTARTNOHAND /
// -ERESTART_RESTARTBLOCK); the restorer must reproduce that: re-enter the
// syscall with the same arguments (and, for sigsuspend, the real signal mask
// -- not the temporary one) and deliver SA_RESTART semantics afterwards.
//
// Usage: blocking PIDFILE MODE   (MODE: sleep | read | poll | sigsuspend | futex)
//   sleep      nanosleep(300 s); SIGUSR2 handler WITHOUT SA_RESTART sets a
//              flag -> EINTR; checks the flag, the elapsed time, and rem.
//              (A spurious EINTR with no SIGUSR2 -- what a restorer that
//              cannot rebuild the kernel's restart_block produces -- is
//              tolerated, reported as a "#" line, and the sleep continues
//              with rem.)
//   read       read() on an empty pipe; the SA_RESTART handler writes "x"
//              into the pipe; read must return that byte: the read was
//              restarted, not failed with EINTR.
//   poll       poll(-1) on the same kind of pipe. poll is never restarted
//              after a handler, so exactly one EINTR after SIGUSR2 is
//              expected; an EINTR before SIGUSR2 (spurious) is a FAIL.
//   sigsuspend blocks SIGUSR1+SIGUSR2, sigsuspend()s with SIGUSR2 allowed;
//              after the handler the original mask must be back.
//   futex      FUTEX_WAIT on a word; the SA_RESTART handler sets the word
//              and FUTEX_WAKEs; the wait must end with the word set and no
//              EINTR (the kernel restarts FUTEX_WAIT without a timeout).
// WL_SABOTAGE=1 simulates a restorer that resumes the syscall wrongly:
//   sleep/poll: re-entered with a 50 ms timeout instead of the real one;
//   read/futex: the SIGUSR2 handler lost SA_RESTART; sigsuspend: the
//   temporary mask became the real one. The mode's main check must FAIL.
// Watchdog: ITIMER_REAL (setitimer) fires after 60 s -> "FAIL timeout",
// exit 2. Only this workload and signals.c use an itimer.
#include "wl.h"
#include <linux/futex.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/time.h>

enum { M_SLEEP, M_READ, M_POLL, M_SIGSUSPEND, M_FUTEX };
static const char *mode_names[] = { "sleep", "read", "poll", "sigsuspend", "futex" };
static int mode = -1;
static int pfd[2];
static volatile uint32_t futex_word;
static int sabotage;

static void on_usr2(int sig)
{
	int saved = errno;
	(void)sig;
	wl_usr2_count++;
	if (mode == M_READ || mode == M_POLL) {
		if (write(pfd[1], "x", 1) != 1)
			_exit(4);
	} else if (mode == M_FUTEX) {
		futex_word = 1;
		syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
	errno = saved;
}

static void on_watchdog(int sig)
{
	static const char msg[] = "FAIL timeout\n";
	(void)sig;
	if (write(1, msg, sizeof msg - 1) < 0)
		_exit(2);
	_exit(2);
}

static void check_handler(void)
{
	wl_check(wl_usr2_count == 1, "handler-ran-once",
		 "SIGUSR2 handler ran %d times", (int)wl_usr2_count);
}

static void do_sleep(void)
{
	struct timespec req = { 300, 0 }, rem = { 0, 0 };
	if (sabotage)
		req = (struct timespec){ 0, 50 * 1000 * 1000 };
	int r, err = 0, spurious = 0;
	double t0 = wl_now();
	for (;;) {
		r = nanosleep(&req, &rem);
		err = errno;
		if (r == 0 || err != EINTR || wl_usr2_count)
			break;
		spurious++; /* interrupted, but not by us: sleep on */
		req = rem;
	}
	double el = wl_now() - t0, rem_s = rem.tv_sec + rem.tv_nsec / 1e9;
	if (spurious)
		printf("# nanosleep returned EINTR %d time(s) without SIGUSR2\n", spurious);
	wl_check(r == -1 && err == EINTR, "sleep-interrupted",
		 "nanosleep returned %d (%s), expected -1 EINTR", r, strerror(err));
	check_handler();
	wl_check(el > 0 && el < wl_timeout_sec() + 1, "sleep-elapsed",
		 "elapsed %.3f s", el);
	wl_check(rem_s > 0 && rem_s <= 300 && 300 - rem_s <= el + 1, "sleep-rem",
		 "rem %.3f s after %.3f s elapsed", rem_s, el);
}

static void do_read(void)
{
	char c = 0;
	ssize_t r;
	int eintr = 0;
	for (;;) {
		r = read(pfd[0], &c, 1);
		if (r < 0 && errno == EINTR) {
			eintr++;
			continue;
		}
		break;
	}
	wl_check(r == 1 && c == 'x', "read-byte",
		 "read returned %zd byte 0x%02x, expected 1 'x'", r, (unsigned char)c);
	wl_check(eintr == 0, "read-restarted",
		 "read failed with EINTR %d time(s) despite SA_RESTART", eintr);
	check_handler();
}

static void do_poll(void)
{
	struct pollfd p = { .fd = pfd[0], .events = POLLIN };
	int r, spurious = 0, eintr_after = 0;
	for (;;) {
		r = poll(&p, 1, sabotage ? 50 : -1);
		if (r < 0 && errno == EINTR) {
			if (wl_usr2_count)
				eintr_after++;
			else
				spurious++;
			continue;
		}
		break;
	}
	printf("# poll: %d EINTR after SIGUSR2\n", eintr_after);
	wl_check(r == 1 && p.revents == POLLIN, "poll-ready",
		 "poll returned %d revents %#x", r, p.revents);
	wl_check(spurious == 0, "poll-no-spurious-eintr",
		 "poll(-1) returned EINTR %d time(s) before SIGUSR2", spurious);
	char c = 0;
	ssize_t n = read(pfd[0], &c, 1);
	wl_check(n == 1 && c == 'x', "poll-byte", "read %zd byte 0x%02x", n,
		 (unsigned char)c);
	check_handler();
}

static void do_sigsuspend(const sigset_t *during, const sigset_t *before)
{
	int r, err, spurious = 0;
	if (sabotage)
		sigprocmask(SIG_SETMASK, during, NULL);
	for (;;) {
		r = sigsuspend(during);
		err = errno;
		if (wl_usr2_count)
			break;
		spurious++;
	}
	if (spurious)
		printf("# sigsuspend returned %d time(s) without SIGUSR2\n", spurious);
	wl_check(r == -1 && err == EINTR, "sigsuspend-eintr",
		 "sigsuspend returned %d (%s)", r, strerror(err));
	check_handler();
	sigset_t after;
	sigprocmask(SIG_BLOCK, NULL, &after);
	int bad = 0;
	for (int s = 1; s < NSIG && !bad; s++)
		if (sigismember(before, s) != sigismember(&after, s))
			bad = s;
	wl_check(!bad, "sigsuspend-mask-restored",
		 "signal %d (%s) is %s after sigsuspend, was %s before", bad,
		 strsignal(bad), sigismember(&after, bad) ? "blocked" : "unblocked",
		 sigismember(before, bad) ? "blocked" : "unblocked");
}

static void do_futex(void)
{
	long r;
	int err = 0, eintr = 0, wakes = 0;
	while (!futex_word) {
		r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
		err = r < 0 ? errno : 0;
		if (r < 0 && err == EINTR)
			eintr++;
		else if (r == 0)
			wakes++;
		else if (err != EAGAIN)
			break;
	}
	printf("# futex: last FUTEX_WAIT ended with %s, %d plain wake(s)\n",
	       err ? strerror(err) : "0", wakes);
	wl_check(futex_word == 1, "futex-word", "word is %u, FUTEX_WAIT failed: %s",
		 futex_word, strerror(err));
	wl_check(eintr == 0, "futex-restarted",
		 "FUTEX_WAIT returned EINTR %d time(s) despite SA_RESTART", eintr);
	check_handler();
}

int main(int argc, char **argv)
{
	if (argc >= 3)
		for (int i = 0; i < 5; i++)
			if (strcmp(argv[2], mode_names[i]) == 0)
				mode = i;
	if (mode < 0) {
		fprintf(stderr, "usage: %s PIDFILE sleep|read|poll|sigsuspend|futex\n", argv[0]);
		return 3;
	}
	wl_init();
	sabotage = wl_sabotage();
	printf("# mode %s\n", mode_names[mode]);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_watchdog;
	sigaction(SIGALRM, &sa, NULL);
	double t = wl_timeout_sec();
	struct itimerval it = { { 0, 0 }, { (time_t)t, (suseconds_t)((t - (long)t) * 1e6) } };
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		wl_setup_fail("setitimer");

	sa.sa_handler = on_usr2;
	sa.sa_flags = mode == M_SLEEP || sabotage ? 0 : SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) < 0)
		wl_setup_fail("sigaction");
	if ((mode == M_READ || mode == M_POLL) && pipe(pfd) < 0)
		wl_setup_fail("pipe");

	sigset_t block, before, during;
	if (mode == M_SIGSUSPEND) {
		sigemptyset(&block);
		sigaddset(&block, SIGUSR1);
		sigaddset(&block, SIGUSR2);
		sigprocmask(SIG_BLOCK, &block, NULL);
		sigprocmask(SIG_BLOCK, NULL, &before);
		during = before;
		sigdelset(&during, SIGUSR2);
	}

	wl_write_pidfile(argv[1]);
	switch (mode) {
	case M_SLEEP: do_sleep(); break;
	case M_READ: do_read(); break;
	case M_POLL: do_poll(); break;
	case M_SIGSUSPEND: do_sigsuspend(&during, &before); break;
	case M_FUTEX: do_futex(); break;
	}
	wl_finish();
}
