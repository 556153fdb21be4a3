// signals.c: signal state: dispositions (handler, flags, mask, restorer),
// the blocked mask, pending signals (standard and queued real-time, with
// their siginfo and order; thread-private and process-wide), the alternate
// signal stack, and an interval timer that keeps firing.
// build:
//
// Why it matters: signal state lives in the kernel and is invisible to the
// program until it bites: a lost SA_RESTART makes syscalls fail with EINTR,
// a lost sa_mask lets handlers nest, a dropped pending signal is a lost
// event (e.g. a lost SIGCHLD or a lost queued real-time message), a wrong
// sigaltstack crashes on the next stack overflow, a lost itimer stops a
// program's clock.
//
// Setup: SIGUSR1 -> SA_SIGINFO|SA_RESTART|SA_ONSTACK handler, sa_mask={SIGINT};
// SIGHUP ignored; SIGPIPE default; SIGURG, SIGWINCH, SIGRTMIN+1 handlers
// (SA_SIGINFO, recording what they receive); blocked: SIGURG, SIGWINCH,
// SIGRTMIN+1; pending: SIGURG via raise() (thread-private queue), SIGWINCH
// via sigqueue(value 77) and SIGRTMIN+1 via sigqueue x3 (values 11, 22, 33)
// (process-wide queue); a 64 KiB sigaltstack; ITIMER_REAL every 20 ms
// counting SIGALRMs.
//
// Usage: signals PIDFILE
// WL_SABOTAGE=1: drops the pending SIGWINCH after the pidfile is written
// (as a restore that lost pending signals would); "pending" and
// "sigwinch-delivered" must FAIL.
#include "wl.h"
#include <sys/mman.h>
#include <sys/time.h>

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000 /* set by libc, not by the program: ignored */
#endif
#define ALTSTACK_LEN (64 * 1024)
#define NUM_SIGS 65

static volatile sig_atomic_t alrm_count;
static volatile int rt_vals[8], rt_count, rt_bad_code;
static volatile int winch_count, winch_val, winch_code;
static volatile int urg_count, urg_code;
static volatile int usr1_count, usr1_signo, usr1_code, usr1_sigint_blocked,
	usr1_onstack_flag;
static volatile uintptr_t usr1_local;
static struct sigaction saved_act[NUM_SIGS];
static int saved_valid[NUM_SIGS];
static sigset_t saved_mask;
static stack_t saved_ss;
static unsigned long long saved_shdpnd, saved_sigpnd;

static void on_alrm(int sig)
{
	(void)sig;
	alrm_count++;
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	char local;
	sigset_t cur;
	stack_t ss;
	(void)sig;
	(void)uc;
	usr1_local = (uintptr_t)&local;
	usr1_signo = si->si_signo;
	usr1_code = si->si_code;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	usr1_sigint_blocked = sigismember(&cur, SIGINT);
	sigaltstack(NULL, &ss);
	usr1_onstack_flag = ss.ss_flags & SS_ONSTACK;
	usr1_count++;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (rt_count < 8)
		rt_vals[rt_count] = si->si_value.sival_int;
	if (si->si_code != SI_QUEUE || si->si_pid != getpid())
		rt_bad_code = 1;
	rt_count++;
}

static void on_winch(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	winch_val = si->si_value.sival_int;
	winch_code = si->si_code;
	winch_count++;
}

static void on_urg(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	urg_code = si->si_code;
	urg_count++;
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags,
		    int masksig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	if (masksig)
		sigaddset(&sa.sa_mask, masksig);
	if (sigaction(sig, &sa, NULL) < 0)
		wl_setup_fail("sigaction");
}

static void simple(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0)
		wl_setup_fail("sigaction");
}

/* SigPnd (thread) and ShdPnd (process) from /proc/self/status, without
 * SIGALRM and SIGUSR2, which may legitimately be in flight. */
static void read_pending(unsigned long long *shd, unsigned long long *thr)
{
	static char buf[8192];
	unsigned long long noise = 1ull << (SIGALRM - 1) | 1ull << (SIGUSR2 - 1);
	*shd = *thr = ~0ull;
	if (wl_read_file("/proc/self/status", buf, sizeof buf) < 0)
		return;
	char *p = strstr(buf, "\nSigPnd:");
	if (p)
		*thr = strtoull(p + 8, NULL, 16) & ~noise;
	p = strstr(buf, "\nShdPnd:");
	if (p)
		*shd = strtoull(p + 8, NULL, 16) & ~noise;
}

static int same_mask(const sigset_t *a, const sigset_t *b, int *which)
{
	for (int s = 1; s < NUM_SIGS; s++)
		if (sigismember(a, s) != sigismember(b, s)) {
			*which = s;
			return 0;
		}
	return 1;
}

/* Compare every disposition with the one saved before the dump. */
static void check_dispositions(void)
{
	int bad = 0, which = 0;
	for (int s = 1; s < NUM_SIGS && !bad; s++) {
		struct sigaction now;
		if (!saved_valid[s] || sigaction(s, NULL, &now) < 0)
			continue;
		struct sigaction *b = &saved_act[s];
		if ((uintptr_t)now.sa_sigaction != (uintptr_t)b->sa_sigaction ||
		    (now.sa_flags & ~SA_RESTORER) != (b->sa_flags & ~SA_RESTORER) ||
		    (void *)now.sa_restorer != (void *)b->sa_restorer ||
		    !same_mask(&now.sa_mask, &b->sa_mask, &which)) {
			bad = s;
			wl_fail("sigaction-all",
				"signal %d: expected handler %p flags %#x restorer %p got %p %#x %p%s",
				s, (void *)(uintptr_t)b->sa_sigaction, b->sa_flags,
				(void *)b->sa_restorer, (void *)(uintptr_t)now.sa_sigaction,
				now.sa_flags, (void *)now.sa_restorer,
				which ? " (sa_mask differs)" : "");
		}
	}
	if (!bad)
		wl_ok("sigaction-all");

	struct sigaction a;
	sigaction(SIGUSR1, NULL, &a);
	int f = a.sa_flags & ~SA_RESTORER;
	int mask_ok = sigismember(&a.sa_mask, SIGINT);
	for (int s = 1; s < NUM_SIGS; s++)
		if (s != SIGINT && sigismember(&a.sa_mask, s))
			mask_ok = 0;
	wl_check((uintptr_t)a.sa_sigaction == (uintptr_t)on_usr1 &&
		 f == (SA_SIGINFO | SA_RESTART | SA_ONSTACK) && mask_ok, "sigaction-usr1",
		 "handler %p (want %p) flags %#x (want %#x) mask %s",
		 (void *)(uintptr_t)a.sa_sigaction, (void *)(uintptr_t)on_usr1, f,
		 SA_SIGINFO | SA_RESTART | SA_ONSTACK, mask_ok ? "ok" : "wrong");
	sigaction(SIGHUP, NULL, &a);
	wl_check(a.sa_handler == SIG_IGN, "sigaction-hup-ign", "SIGHUP not ignored");
	sigaction(SIGPIPE, NULL, &a);
	wl_check(a.sa_handler == SIG_DFL, "sigaction-pipe-dfl", "SIGPIPE not default");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	const int rt1 = SIGRTMIN + 1;

	/* dispositions */
	install(SIGUSR1, on_usr1, SA_RESTART | SA_ONSTACK, SIGINT);
	simple(SIGHUP, SIG_IGN, 0);
	simple(SIGPIPE, SIG_DFL, 0);
	install(rt1, on_rt, 0, 0);
	install(SIGWINCH, on_winch, SA_RESTART, 0);
	install(SIGURG, on_urg, SA_RESTART, 0);
	simple(SIGALRM, on_alrm, SA_RESTART);

	/* alternate signal stack */
	stack_t ss = { .ss_size = ALTSTACK_LEN, .ss_flags = 0 };
	ss.ss_sp = mmap(NULL, ALTSTACK_LEN, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) < 0)
		wl_setup_fail("sigaltstack");

	/* sanity before the dump: the SA_ONSTACK handler runs on the alt stack */
	raise(SIGUSR1);
	if (usr1_count != 1 || usr1_local < (uintptr_t)ss.ss_sp ||
	    usr1_local >= (uintptr_t)ss.ss_sp + ALTSTACK_LEN)
		wl_setup_fail("SIGUSR1 handler not on the alt stack before dump");

	/* blocked mask and pending signals */
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGURG);
	sigaddset(&block, SIGWINCH);
	sigaddset(&block, rt1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	raise(SIGURG); /* tgkill: thread-private pending */
	if (sigqueue(getpid(), SIGWINCH, (union sigval){ .sival_int = 77 }) < 0)
		wl_setup_fail("sigqueue SIGWINCH");
	for (int v = 11; v <= 33; v += 11)
		if (sigqueue(getpid(), rt1, (union sigval){ .sival_int = v }) < 0)
			wl_setup_fail("sigqueue SIGRTMIN+1");

	/* interval timer: 20 ms */
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } };
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		wl_setup_fail("setitimer");

	/* remember everything */
	for (int s = 1; s < NUM_SIGS; s++)
		saved_valid[s] = sigaction(s, NULL, &saved_act[s]) == 0;
	sigprocmask(SIG_BLOCK, NULL, &saved_mask);
	sigaltstack(NULL, &saved_ss);
	read_pending(&saved_shdpnd, &saved_sigpnd);

	wl_write_pidfile(argv[1]);
	if (wl_sabotage()) { /* setting SIG_IGN discards the pending signal */
		simple(SIGWINCH, SIG_IGN, 0);
		install(SIGWINCH, on_winch, SA_RESTART, 0);
	}
	wl_wait_usr2();
	int alrm_waiting = alrm_count; /* the timer fired while we waited */

	/* 1. dispositions */
	check_dispositions();

	/* 2. blocked mask */
	sigset_t now;
	int which = 0;
	sigprocmask(SIG_BLOCK, NULL, &now);
	wl_check(same_mask(&now, &saved_mask, &which), "blocked-mask",
		 "signal %d (%s) is %s, was %s", which, strsignal(which),
		 sigismember(&now, which) ? "blocked" : "unblocked",
		 sigismember(&saved_mask, which) ? "blocked" : "unblocked");

	/* 3. pending signals, and in which queue */
	sigset_t pend;
	sigpending(&pend);
	int pend_ok = sigismember(&pend, SIGURG) && sigismember(&pend, SIGWINCH) &&
		      sigismember(&pend, rt1);
	for (int s = 1; s < NUM_SIGS; s++)
		if (sigismember(&pend, s) && s != SIGURG && s != SIGWINCH && s != rt1 &&
		    s != SIGALRM && s != SIGUSR2)
			pend_ok = 0;
	wl_check(pend_ok, "pending", "pending: SIGURG %d SIGWINCH %d SIGRTMIN+1 %d (want 1 1 1, nothing else)",
		 sigismember(&pend, SIGURG), sigismember(&pend, SIGWINCH),
		 sigismember(&pend, rt1));
	unsigned long long shd, thr;
	read_pending(&shd, &thr);
	wl_check(shd == saved_shdpnd && thr == saved_sigpnd, "pending-queues",
		 "ShdPnd %#llx SigPnd %#llx, expected %#llx %#llx", shd, thr,
		 saved_shdpnd, saved_sigpnd);

	/* 4. sigaltstack */
	stack_t cur;
	sigaltstack(NULL, &cur);
	wl_check(cur.ss_sp == saved_ss.ss_sp && cur.ss_size == saved_ss.ss_size &&
		 cur.ss_flags == saved_ss.ss_flags, "sigaltstack",
		 "expected sp %p size %zu flags %d got %p %zu %d", saved_ss.ss_sp,
		 saved_ss.ss_size, saved_ss.ss_flags, cur.ss_sp, cur.ss_size, cur.ss_flags);

	/* 5. itimer */
	struct itimerval g;
	getitimer(ITIMER_REAL, &g);
	wl_check(g.it_interval.tv_sec == 0 && g.it_interval.tv_usec == 20000 &&
		 (g.it_value.tv_sec || g.it_value.tv_usec) && g.it_value.tv_sec == 0 &&
		 g.it_value.tv_usec <= 20000, "itimer-interval",
		 "interval %ld.%06ld value %ld.%06ld, expected interval 0.020000",
		 (long)g.it_interval.tv_sec, (long)g.it_interval.tv_usec,
		 (long)g.it_value.tv_sec, (long)g.it_value.tv_usec);

	/* 6. unblock: the pending signals arrive, RT ones in order */
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	wl_check(urg_count == 1 && urg_code == SI_TKILL, "sigurg-delivered",
		 "SIGURG delivered %d time(s), si_code %d (want 1, SI_TKILL)", urg_count,
		 urg_code);
	wl_check(winch_count == 1 && winch_val == 77 && winch_code == SI_QUEUE,
		 "sigwinch-delivered", "SIGWINCH delivered %d time(s), value %d code %d",
		 winch_count, winch_val, winch_code);
	wl_check(rt_count == 3 && rt_vals[0] == 11 && rt_vals[1] == 22 &&
		 rt_vals[2] == 33 && !rt_bad_code, "rt-queue-order",
		 "SIGRTMIN+1 delivered %d time(s): %d %d %d (want 11 22 33)%s", rt_count,
		 rt_vals[0], rt_vals[1], rt_vals[2], rt_bad_code ? ", bad si_code/si_pid" : "");

	/* 7. SA_ONSTACK handler on the alt stack, with its sa_mask applied */
	usr1_count = 0;
	usr1_local = 0;
	raise(SIGUSR1);
	wl_check(usr1_count == 1 && usr1_signo == SIGUSR1 && usr1_code == SI_TKILL,
		 "usr1-siginfo", "count %d signo %d code %d", usr1_count, usr1_signo,
		 usr1_code);
	wl_check(usr1_local >= (uintptr_t)saved_ss.ss_sp &&
		 usr1_local < (uintptr_t)saved_ss.ss_sp + saved_ss.ss_size &&
		 usr1_onstack_flag, "usr1-on-altstack",
		 "handler local at %#lx, alt stack %p+%zu, SS_ONSTACK %d",
		 (unsigned long)usr1_local, saved_ss.ss_sp, saved_ss.ss_size,
		 usr1_onstack_flag);
	wl_check(usr1_sigint_blocked, "usr1-sa_mask", "SIGINT not blocked in the handler");

	/* 8. the timer keeps firing at ~50/s */
	wl_check(alrm_waiting > 0, "itimer-while-waiting", "no SIGALRM before SIGUSR2");
	int c0 = alrm_count;
	double t0 = wl_now();
	wl_sleep(0.3);
	int c1 = alrm_count;
	double rate = (c1 - c0) / (wl_now() - t0);
	wl_check(rate > 25 && rate < 75, "itimer-firing",
		 "%d SIGALRMs in 300 ms (%.1f/s), expected ~50/s", c1 - c0, rate);

	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	wl_finish();
}
