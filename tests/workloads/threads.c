// threads.c: a multi-threaded process: main + 8 threads, each frozen in a
// different place (futex waits of a condvar, a join and a mutex, a pipe
// read, a raw FUTEX_WAIT, a nanosleep poll, a user-space spin, sigwait),
// with per-thread TIDs, names, TLS, callee-saved registers, signal masks,
// a sigaltstack, and glibc's per-thread kernel registrations (robust list,
// clear_child_tid, rseq).
// build: -pthread
//
// Why it matters: nearly every real program has threads. Each thread has
// its own registers, fs_base (TLS), signal mask, alternate stack, comm, and
// its own blocking syscall to resume; the TIDs are stored in memory (glibc's
// struct pthread, mutex owners) so they must come back unchanged; pthread_join
// relies on the kernel clearing the exiting thread's clear_child_tid word; a
// lost per-thread mask lets a process-wide signal land on the wrong thread.
//
//   #  name       blocked at dump time in                  woken after SIGUSR2 by
//   0  main       nanosleep poll of the SIGUSR2 flag        the SIGUSR2 handler
//   1  cond       pthread_cond_wait (mask +SIGRTMIN+1)      pthread_cond_broadcast
//   2  join       pthread_join(thread 3) (mask +SIGRTMIN+2) thread 3 exiting
//   3  read       read() on an empty pipe (mask +SIGRTMIN+3) main writes "x"
//   4  futex      FUTEX_WAIT_PRIVATE on a plain word        word = 1, FUTEX_WAKE
//   5  nanosleep  5 ms nanosleep poll of a flag, HOLDING    main sets the flag
//                 the mutex; own 64 KiB sigaltstack
//   6  spin       user space: LCG arithmetic + flag test    main sets the flag
//   7  sigwait    sigwait({SIGUSR1})                        pthread_kill(SIGUSR1)
//   8  mutex      pthread_mutex_lock on thread 5's mutex    thread 5 unlocking
//
// Setup: SIGUSR1 and SIGUSR2 are blocked before the threads are created (so
// every thread inherits both blocked) and SIGUSR2 is unblocked in main only
// afterwards: only main may run the SIGUSR2 handler. Each thread names
// itself wl-NAME, fills a 512-byte __thread pattern, blocks its extra
// signal, snapshots its state, then meets everyone at a barrier and enters
// its wait holding thread-specific values in rbx, r12-r15 (register
// variables live across the call). Main then polls /proc/self/task/TID/syscall
// until every thread is inside its blocking syscall (the spinner: in user
// space) and only then writes the pidfile, so the dump always catches the
// threads in these places. After SIGUSR2 main checks /proc/self/task and who
// ran the handler, wakes the threads one by one (each has to finish before
// the next is woken), joins them and compares every thread's state after its
// wait with its snapshot from before.
//
// Bounded waits: main is the watchdog. Everything it does after the pidfile
// is bounded (wl_wait_usr2, pthread_mutex_clocklock, polling the threads'
// done flags, pthread_clockjoin_np) against a 60 s deadline; when a thread
// does not finish, main says which, prints "FAIL timeout" and exits 2, which
// ends every thread.
//
// Usage: threads PIDFILE
// WL_SABOTAGE=1: after the pidfile is written main flips a byte of the futex
// thread's __thread pattern (as a restore that got that thread's TLS wrong
// would); "tls" must FAIL.
#include "wl.h"
#include <asm/prctl.h>
#include <dirent.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#define NTH 9		     /* main + 8 threads */
#define NREG 5		     /* rbx r12 r13 r14 r15 */
#define TLS_LEN 512
#define ALTSTACK_LEN (64 * 1024)
#define STACK_LEN (256 * 1024)
#define LCG_A 6364136223846793005ull
#define LCG_C 1442695040888963407ull

enum { T_MAIN, T_COND, T_JOIN, T_READ, T_FUTEX, T_SLEEP, T_SPIN, T_SIGWAIT, T_MUTEX };
static const char *kind[NTH] = { "main", "cond", "join", "read", "futex",
				 "nanosleep", "spin", "sigwait", "mutex" };
static const char *reg_name[NREG] = { "rbx", "r12", "r13", "r14", "r15" };

struct snap {
	pid_t tid;
	unsigned long fs_base;	/* arch_prctl(ARCH_GET_FS) */
	uintptr_t fs0;		/* %fs:0, glibc's self pointer */
	void *tls_addr;		/* &tls_pat in this thread */
	sigset_t mask;
	stack_t ss;
	char comm[17];
	void *robust_head;
	size_t robust_len;
	void *tid_addr;
	int tid_addr_ok;
	int rseq_len;		/* length the kernel has registered, -1: none */
	int32_t rseq_cpu;
};

struct th {
	int idx;
	pthread_t handle;
	struct snap before, after;
	uint64_t reg_in[NREG], reg_out[NREG];
	long tls_bad;		/* first wrong byte of the pattern, or -1 */
	uint8_t tls_bad_val;
	volatile int ready;	/* about to enter its wait */
	int done;		/* after-snapshot taken (atomic) */
	int wait_ok;		/* the wait ended the right way */
	char detail[200];	/* how it ended */
};
static struct th th[NTH];

static __thread uint8_t tls_pat[TLS_LEN];

static pthread_barrier_t barrier;
static pid_t main_tid;
static volatile pid_t usr2_tid, usr2_other;

/* thread 1 */
static pthread_mutex_t cond_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond_cv = PTHREAD_COND_INITIALIZER;
static int cond_go;
/* thread 3 */
static int pfd[2];
/* thread 4 */
static uint32_t futex_word;
/* thread 5 holds mtx, thread 8 waits for it */
static pthread_mutex_t mtx;
static volatile int sleep_go, x_released;
static void *alt_mem;
static int sig_alt; /* SIGRTMIN+5, SA_ONSTACK handler */
static volatile uintptr_t alt_local;
static volatile int alt_onstack;
static volatile pid_t alt_tid;
/* thread 6 */
static volatile int spin_go;
static uint64_t spin_seed, spin_n, spin_x;

static void on_usr2(int sig)
{
	pid_t me = gettid();
	(void)sig;
	usr2_tid = me;
	if (me != main_tid)
		usr2_other = me;
	wl_usr2_count++;
}

static void on_alt(int sig)
{
	char local;
	stack_t ss;
	(void)sig;
	alt_local = (uintptr_t)&local;
	sigaltstack(NULL, &ss);
	alt_onstack = ss.ss_flags & SS_ONSTACK;
	alt_tid = gettid();
}

static volatile struct rseq *rseq_area(void)
{
	return (volatile struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* Which rseq length the kernel has registered for THIS thread:
 * re-registering the same area/length/signature fails with EBUSY. */
static int rseq_registered_len(void)
{
	unsigned lens[] = { __rseq_size, 32 };
	for (int i = 0; i < 2; i++)
		if (lens[i] && syscall(SYS_rseq, rseq_area(), lens[i], 0, RSEQ_SIG) < 0 &&
		    errno == EBUSY)
			return (int)lens[i];
	return -1;
}

/* Snapshot of the calling thread. */
static void take(struct snap *s)
{
	s->tid = gettid();
	s->fs_base = 0;
	syscall(SYS_arch_prctl, ARCH_GET_FS, &s->fs_base);
	s->fs0 = *(uintptr_t *)__builtin_thread_pointer();
	s->tls_addr = tls_pat;
	pthread_sigmask(SIG_BLOCK, NULL, &s->mask);
	sigaltstack(NULL, &s->ss);
	memset(s->comm, 0, sizeof s->comm);
	prctl(PR_GET_NAME, s->comm);
	syscall(SYS_get_robust_list, 0, &s->robust_head, &s->robust_len);
	s->tid_addr_ok = prctl(PR_GET_TID_ADDRESS, &s->tid_addr) == 0;
	s->rseq_len = __rseq_size ? rseq_registered_len() : -1;
	s->rseq_cpu = __rseq_size ? (int32_t)rseq_area()->cpu_id : -1;
}

static uint64_t lcg_jump(uint64_t x, uint64_t n) /* n LCG steps in O(log n) */
{
	uint64_t a = LCG_A, c = LCG_C, am = 1, cm = 0;
	while (n) {
		if (n & 1) {
			am *= a;
			cm = cm * a + c;
		}
		c *= a + 1;
		a *= a;
		n >>= 1;
	}
	return am * x + cm;
}

/* ---- the waits (thread side); each sets wait_ok and detail ---- */

static void wait_main(struct th *t)
{
	(void)t;
	wl_wait_usr2();
}

static void wait_cond(struct th *t)
{
	int r = 0, wakeups = 0, seen;
	pthread_mutex_lock(&cond_m);
	while (!cond_go && r == 0) {
		r = pthread_cond_wait(&cond_cv, &cond_m);
		wakeups++;
	}
	seen = cond_go;
	pthread_mutex_unlock(&cond_m);
	t->wait_ok = r == 0 && seen == 1;
	snprintf(t->detail, sizeof t->detail,
		 "pthread_cond_wait returned %d after %d wakeup(s), predicate %d", r,
		 wakeups, seen);
}

static void wait_join(struct th *t)
{
	void *ret = NULL;
	int r = pthread_join(th[T_READ].handle, &ret);
	t->wait_ok = r == 0 && ret == &th[T_READ];
	snprintf(t->detail, sizeof t->detail,
		 "pthread_join(read thread) returned %d, value %p (want 0, %p)", r, ret,
		 (void *)&th[T_READ]);
}

static void wait_read(struct th *t)
{
	char c = 0;
	ssize_t r;
	int eintr = 0, err = 0;
	while ((r = read(pfd[0], &c, 1)) < 0 && errno == EINTR)
		eintr++;
	if (r < 0)
		err = errno;
	t->wait_ok = r == 1 && c == 'x' && eintr == 0;
	snprintf(t->detail, sizeof t->detail,
		 "read returned %zd (%s) byte 0x%02x, %d EINTR (want 1 'x', no EINTR)", r,
		 strerror(err), (unsigned char)c, eintr);
}

static void wait_futex(struct th *t)
{
	long r = 0;
	int eintr = 0, err = 0, calls = 0;
	while (__atomic_load_n(&futex_word, __ATOMIC_ACQUIRE) == 0) {
		r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
		calls++;
		if (r < 0 && errno == EINTR)
			eintr++;
		else if (r < 0 && errno != EAGAIN) {
			err = errno;
			break;
		}
	}
	uint32_t w = __atomic_load_n(&futex_word, __ATOMIC_ACQUIRE);
	t->wait_ok = w == 1 && eintr == 0 && err == 0;
	snprintf(t->detail, sizeof t->detail,
		 "word %u after %d FUTEX_WAIT call(s), %d EINTR, error %s (want 1, no EINTR)",
		 w, calls, eintr, err ? strerror(err) : "none");
}

static void wait_sleep(struct th *t)
{
	long naps = 0, eintr = 0;
	while (!sleep_go) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
			eintr++; /* tolerated: we poll */
		naps++;
	}
	x_released = 1;
	int r = pthread_mutex_unlock(&mtx); /* error-checking: EPERM if not owner */
	t->wait_ok = r == 0;
	snprintf(t->detail, sizeof t->detail,
		 "unlocking the held mutex returned %d (%s) after %ld naps, %ld EINTR", r,
		 strerror(r), naps, eintr);
}

static void wait_spin(struct th *t)
{
	uint64_t x = spin_seed, n = 0;
	while (!spin_go) {
		x = x * LCG_A + LCG_C;
		n++;
	}
	spin_n = n;
	spin_x = x;
	uint64_t want = lcg_jump(spin_seed, n);
	t->wait_ok = n > 0 && x == want;
	snprintf(t->detail, sizeof t->detail,
		 "after %llu iterations x = %#llx, expected %#llx", (unsigned long long)n,
		 (unsigned long long)x, (unsigned long long)want);
}

static void wait_sigwait(struct th *t)
{
	sigset_t s;
	int sig = 0;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	int r = sigwait(&s, &sig);
	t->wait_ok = r == 0 && sig == SIGUSR1;
	snprintf(t->detail, sizeof t->detail, "sigwait returned %d, signal %d (want 0, %d)",
		 r, sig, SIGUSR1);
}

static void wait_mutex(struct th *t)
{
	int r = pthread_mutex_lock(&mtx);
	int seen = x_released;
	int r2 = r == 0 ? pthread_mutex_unlock(&mtx) : -1;
	t->wait_ok = r == 0 && seen == 1 && r2 == 0;
	snprintf(t->detail, sizeof t->detail,
		 "pthread_mutex_lock returned %d, holder had released: %d, unlock %d", r,
		 seen, r2);
}

typedef void (*wait_fn)(struct th *);
static const wait_fn waits[NTH] = { wait_main, wait_cond, wait_join, wait_read,
				    wait_futex, wait_sleep, wait_spin, wait_sigwait,
				    wait_mutex };

/* Keep the thread's patterns in the callee-saved rbx, r12-r15 across the
 * whole wait (the wait function saves/restores them on its own stack if it
 * needs them, as the ABI says), then store what is left in them. */
static __attribute__((noinline)) void hold_regs(struct th *t)
{
	register uint64_t rbx asm("rbx") = t->reg_in[0];
	register uint64_t r12 asm("r12") = t->reg_in[1];
	register uint64_t r13 asm("r13") = t->reg_in[2];
	register uint64_t r14 asm("r14") = t->reg_in[3];
	register uint64_t r15 asm("r15") = t->reg_in[4];
	asm volatile("" : "+r"(rbx), "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15));
	t->ready = 1;
	waits[t->idx](t);
	asm volatile("" : "+r"(rbx), "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15));
	t->reg_out[0] = rbx;
	t->reg_out[1] = r12;
	t->reg_out[2] = r13;
	t->reg_out[3] = r14;
	t->reg_out[4] = r15;
}

static uint64_t tls_seed(int idx)
{
	return 1000 + idx;
}

/* Per-thread setup common to main and the threads. */
static void setup_common(struct th *t)
{
	wl_fill(tls_pat, TLS_LEN, tls_seed(t->idx), 0);
	for (int k = 0; k < NREG; k++)
		t->reg_in[k] = 0x5354415349530000ull ^ ((uint64_t)t->idx << 40) ^
			       ((k + 1) * 0x9E3779B97F4A7C15ull);
}

/* The thread's part after its wait: verify TLS, snapshot, report done. */
static void finish_common(struct th *t)
{
	t->tls_bad = wl_mismatch(tls_pat, TLS_LEN, tls_seed(t->idx), 0);
	if (t->tls_bad >= 0)
		t->tls_bad_val = tls_pat[t->tls_bad];
	take(&t->after);
}

static void *thread_main(void *arg)
{
	struct th *t = arg;
	char name[16];
	snprintf(name, sizeof name, "wl-%s", kind[t->idx]);
	if (prctl(PR_SET_NAME, name) < 0)
		wl_setup_fail("PR_SET_NAME");
	setup_common(t);
	if (t->idx >= 1 && t->idx <= 3) { /* threads 1..3: one extra blocked signal */
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGRTMIN + t->idx);
		pthread_sigmask(SIG_BLOCK, &s, NULL);
	}
	if (t->idx == T_SLEEP) {
		stack_t ss = { .ss_sp = alt_mem, .ss_size = ALTSTACK_LEN, .ss_flags = 0 };
		if (sigaltstack(&ss, NULL) < 0)
			wl_setup_fail("sigaltstack");
		raise(sig_alt);
		if (alt_tid != gettid() || !alt_onstack || alt_local < (uintptr_t)alt_mem ||
		    alt_local >= (uintptr_t)alt_mem + ALTSTACK_LEN)
			wl_setup_fail("SA_ONSTACK handler not on the thread's alt stack");
		int r = pthread_mutex_lock(&mtx);
		if (r) {
			errno = r;
			wl_setup_fail("pthread_mutex_lock");
		}
	}
	if (t->idx == T_SPIN)
		spin_seed = 0x5350494e00000000ull ^ (uint64_t)gettid();
	take(&t->before);
	pthread_barrier_wait(&barrier);

	hold_regs(t);

	finish_common(t);
	if (t->idx == T_SLEEP) { /* the alt stack still works */
		alt_local = 0;
		alt_onstack = 0;
		alt_tid = 0;
		raise(sig_alt);
	}
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return t;
}

/* ---- main side ---- */

static struct timespec mono_ts(double t)
{
	struct timespec ts = { (time_t)t, (long)((t - (time_t)t) * 1e9) };
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

__attribute__((noreturn)) static void thread_timeout(int i, const char *what)
{
	printf("# thread %d (%s, tid %d) %s\n", i, kind[i], th[i].before.tid, what);
	wl_timeout();
}

static void wait_done(int i, double deadline)
{
	while (!__atomic_load_n(&th[i].done, __ATOMIC_ACQUIRE)) {
		if (wl_now() > deadline)
			thread_timeout(i, "did not finish its wait");
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* Is thread t inside its blocking syscall (the spinner: in user space)?
 * 1 yes, 0 not yet, -1 /proc/self/task/TID/syscall is unreadable. */
static int in_wait(struct th *t, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", t->before.tid);
	if (wl_read_file(path, buf, size) <= 0)
		return -1;
	buf[strcspn(buf, "\n")] = 0;
	if (!t->ready)
		return 0;
	if (t->idx == T_SPIN)
		return strncmp(buf, "running", 7) == 0 || strncmp(buf, "-1 ", 3) == 0;
	if (buf[0] < '0' || buf[0] > '9')
		return 0;
	long nr = atol(buf);
	switch (t->idx) {
	case T_READ:
		return nr == SYS_read;
	case T_SLEEP:
		return nr == SYS_clock_nanosleep || nr == SYS_nanosleep;
	case T_SIGWAIT:
		return nr == SYS_rt_sigtimedwait;
	default: /* cond, join, futex, mutex */
		return nr == SYS_futex;
	}
}

static void wait_all_in_place(void)
{
	static char buf[256];
	double deadline = wl_now() + 10;
	for (int i = 1; i < NTH; i++) {
		for (;;) {
			int r = in_wait(&th[i], buf, sizeof buf);
			if (r < 0) {
				printf("# /proc/self/task/TID/syscall unreadable: sleeping 100 ms instead\n");
				wl_sleep(0.1);
				return;
			}
			if (r > 0)
				break;
			if (wl_now() > deadline) {
				printf("FAIL setup: thread %d (%s) not in its wait after 10 s (ready %d, syscall: %s)\n",
				       i, kind[i], th[i].ready, buf);
				fflush(stdout);
				exit(3);
			}
			wl_sleep(0.001);
		}
	}
}

/* /proc/self/task == the recorded TIDs. */
static int task_list_ok(char *why, size_t n)
{
	DIR *d = opendir("/proc/self/task");
	if (!d) {
		snprintf(why, n, "opendir /proc/self/task: %s", strerror(errno));
		return 0;
	}
	int count = 0, seen[NTH] = { 0 };
	pid_t extra = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		pid_t tid = atoi(e->d_name);
		int found = 0;
		count++;
		for (int i = 0; i < NTH; i++)
			if (th[i].before.tid == tid) {
				seen[i] = 1;
				found = 1;
			}
		if (!found && !extra)
			extra = tid;
	}
	closedir(d);
	int missing = -1;
	for (int i = 0; i < NTH && missing < 0; i++)
		if (!seen[i])
			missing = i;
	if (!extra && missing < 0 && count == NTH)
		return 1;
	snprintf(why, n, "%d tasks (want %d), unexpected tid %d, missing: %s%s%d", count,
		 NTH, extra, missing < 0 ? "none" : kind[missing], missing < 0 ? "" : " tid ",
		 missing < 0 ? 0 : th[missing].before.tid);
	return 0;
}

static void expected_mask(int idx, sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGUSR1);
	if (idx != T_MAIN)
		sigaddset(s, SIGUSR2);
	if (idx >= 1 && idx <= 3)
		sigaddset(s, SIGRTMIN + idx);
}

static int mask_diff(const sigset_t *a, const sigset_t *b) /* first differing signal */
{
	for (int s = 1; s < 65; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return s;
	return 0;
}

/* ---- per-thread checks: 1 ok, else 0 with why filled ---- */
typedef int (*th_check)(struct th *, char *, size_t);

static int ck_tid(struct th *t, char *why, size_t n)
{
	snprintf(why, n, "gettid %d, before %d", t->after.tid, t->before.tid);
	return t->before.tid > 0 && t->after.tid == t->before.tid &&
	       (t->idx != T_MAIN || t->after.tid == getpid());
}

static int ck_tls(struct th *t, char *why, size_t n)
{
	if (t->tls_bad < 0)
		return 1;
	snprintf(why, n, "__thread pattern byte %ld of %d: expected 0x%02x got 0x%02x",
		 t->tls_bad, TLS_LEN, wl_pat(tls_seed(t->idx), t->tls_bad), t->tls_bad_val);
	return 0;
}

static int ck_fs(struct th *t, char *why, size_t n)
{
	snprintf(why, n, "fs_base %#lx %%fs:0 %#lx &tls %p, before %#lx %#lx %p",
		 t->after.fs_base, (unsigned long)t->after.fs0, t->after.tls_addr,
		 t->before.fs_base, (unsigned long)t->before.fs0, t->before.tls_addr);
	return t->after.fs_base == t->before.fs_base && t->after.fs0 == t->after.fs_base &&
	       t->after.tls_addr == t->before.tls_addr;
}

static int ck_regs(struct th *t, char *why, size_t n)
{
	for (int k = 0; k < NREG; k++)
		if (t->reg_out[k] != t->reg_in[k]) {
			snprintf(why, n, "%s expected %#llx got %#llx", reg_name[k],
				 (unsigned long long)t->reg_in[k],
				 (unsigned long long)t->reg_out[k]);
			return 0;
		}
	return 1;
}

static int ck_mask(struct th *t, char *why, size_t n)
{
	sigset_t want;
	expected_mask(t->idx, &want);
	int d = mask_diff(&t->after.mask, &t->before.mask);
	if (!d)
		d = mask_diff(&t->after.mask, &want);
	if (!d)
		return 1;
	snprintf(why, n, "signal %d (%s) is %s, before %s, expected %s", d, strsignal(d),
		 sigismember(&t->after.mask, d) ? "blocked" : "unblocked",
		 sigismember(&t->before.mask, d) ? "blocked" : "unblocked",
		 sigismember(&want, d) ? "blocked" : "unblocked");
	return 0;
}

static int ck_altstack(struct th *t, char *why, size_t n)
{
	const stack_t *a = &t->after.ss, *b = &t->before.ss;
	snprintf(why, n, "sp %p size %zu flags %d, before %p %zu %d", a->ss_sp, a->ss_size,
		 a->ss_flags, b->ss_sp, b->ss_size, b->ss_flags);
	if (a->ss_flags != b->ss_flags)
		return 0;
	if (t->idx == T_SLEEP)
		return a->ss_flags == 0 && a->ss_sp == alt_mem && a->ss_size == ALTSTACK_LEN &&
		       b->ss_sp == alt_mem && b->ss_size == ALTSTACK_LEN;
	return a->ss_flags == SS_DISABLE;
}

static int ck_comm(struct th *t, char *why, size_t n)
{
	char want[20];
	snprintf(want, sizeof want, "wl-%s", kind[t->idx]);
	snprintf(why, n, "comm \"%s\", before \"%s\"", t->after.comm, t->before.comm);
	return strcmp(t->after.comm, t->before.comm) == 0 &&
	       (t->idx == T_MAIN || strcmp(t->after.comm, want) == 0);
}

static int ck_robust(struct th *t, char *why, size_t n)
{
	snprintf(why, n, "head %p len %zu, before %p %zu", t->after.robust_head,
		 t->after.robust_len, t->before.robust_head, t->before.robust_len);
	return t->after.robust_head == t->before.robust_head &&
	       t->after.robust_len == t->before.robust_len;
}

static int ck_tid_addr(struct th *t, char *why, size_t n)
{
	snprintf(why, n, "%p (%s), before %p", t->after.tid_addr,
		 t->after.tid_addr_ok ? "ok" : "PR_GET_TID_ADDRESS failed", t->before.tid_addr);
	return t->after.tid_addr_ok && t->after.tid_addr == t->before.tid_addr;
}

static int ck_rseq(struct th *t, char *why, size_t n)
{
	snprintf(why, n, "registered length %d (before %d), cpu_id %d",
		 t->after.rseq_len, t->before.rseq_len, t->after.rseq_cpu);
	return t->before.rseq_len > 0 && t->after.rseq_len == t->before.rseq_len &&
	       t->after.rseq_cpu >= 0;
}

/* One ok/FAIL line for a property of every thread; the FAIL line names the
 * first thread that lost it and how many did. */
static void check_all(const char *name, th_check fn)
{
	char why[300], first[400] = "";
	int bad = 0;
	for (int i = 0; i < NTH; i++) {
		why[0] = 0;
		if (fn(&th[i], why, sizeof why))
			continue;
		if (!bad++)
			snprintf(first, sizeof first, "thread %d (%s, tid %d): %s", i, kind[i],
				 th[i].before.tid, why);
	}
	if (bad == 1)
		wl_fail(name, "%s", first);
	else if (bad)
		wl_fail(name, "%s; %d threads in all", first, bad);
	else
		wl_ok(name);
}

static void check_wait(int i)
{
	char name[32];
	snprintf(name, sizeof name, "wait-%s", kind[i]);
	wl_check(th[i].wait_ok, name, "%s", th[i].detail);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	main_tid = gettid();
	sig_alt = SIGRTMIN + 5;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) < 0)
		wl_setup_fail("sigaction(SIGUSR2)");
	sa.sa_handler = on_alt;
	sa.sa_flags = SA_RESTART | SA_ONSTACK;
	if (sigaction(sig_alt, &sa, NULL) < 0)
		wl_setup_fail("sigaction(SIGRTMIN+5)");

	if (pipe2(pfd, O_CLOEXEC) < 0 || fcntl(pfd[1], F_SETFL, O_NONBLOCK) < 0)
		wl_setup_fail("pipe");
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&mtx, &ma);
	pthread_barrier_init(&barrier, NULL, NTH);
	alt_mem = mmap(NULL, ALTSTACK_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt_mem == MAP_FAILED)
		wl_setup_fail("mmap alt stack");

	/* every thread starts with SIGUSR1 and SIGUSR2 blocked */
	sigset_t usr;
	sigemptyset(&usr);
	sigaddset(&usr, SIGUSR1);
	sigaddset(&usr, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr, NULL);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, STACK_LEN);
	for (int i = 1; i < NTH; i++) {
		th[i].idx = i;
		int r = pthread_create(&th[i].handle, &attr, thread_main, &th[i]);
		if (r) {
			errno = r;
			wl_setup_fail("pthread_create");
		}
	}
	pthread_attr_destroy(&attr);

	struct th *m = &th[T_MAIN];
	m->idx = T_MAIN;
	setup_common(m);
	pthread_barrier_wait(&barrier);
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &usr2, NULL); /* SIGUSR2: main only */

	wait_all_in_place();
	if (pthread_mutex_trylock(&mtx) != EBUSY) {
		printf("FAIL setup: the nanosleep thread does not hold the mutex\n");
		fflush(stdout);
		exit(3);
	}
	take(&m->before);
	char why[400];
	if (!task_list_ok(why, sizeof why)) {
		printf("FAIL setup: /proc/self/task before the dump: %s\n", why);
		fflush(stdout);
		exit(3);
	}

	wl_write_pidfile(argv[1]);
	if (wl_sabotage()) /* as a restore that got this thread's TLS wrong */
		((volatile uint8_t *)th[T_FUTEX].before.tls_addr)[100] ^= 0x5a;

	hold_regs(m); /* wl_wait_usr2 */
	finish_common(m);

	/* all threads still alive, each in its wait */
	wl_check(task_list_ok(why, sizeof why), "task-list", "%s", why);
	wl_check(usr2_tid == main_tid && !usr2_other, "usr2-main-only",
		 "SIGUSR2 handler ran in tid %d (other than main: %d), main is %d",
		 usr2_tid, usr2_other, main_tid);

	/* wake them one by one */
	double deadline = wl_now() + wl_timeout_sec();
	struct timespec dl = mono_ts(deadline);
	if (pthread_mutex_clocklock(&cond_m, CLOCK_MONOTONIC, &dl) != 0)
		thread_timeout(T_COND, "kept the condvar mutex");
	cond_go = 1;
	pthread_cond_broadcast(&cond_cv);
	pthread_mutex_unlock(&cond_m);
	wait_done(T_COND, deadline);

	if (write(pfd[1], "x", 1) != 1)
		printf("# write to the pipe failed: %s\n", strerror(errno));
	wait_done(T_READ, deadline);
	wait_done(T_JOIN, deadline);

	__atomic_store_n(&futex_word, 1, __ATOMIC_RELEASE);
	long woken = syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	wait_done(T_FUTEX, deadline);

	sleep_go = 1;
	wait_done(T_SLEEP, deadline);
	wait_done(T_MUTEX, deadline);

	spin_go = 1;
	wait_done(T_SPIN, deadline);

	int kr = pthread_kill(th[T_SIGWAIT].handle, SIGUSR1);
	if (kr)
		printf("# pthread_kill(SIGUSR1): %s\n", strerror(kr));
	wait_done(T_SIGWAIT, deadline);

	/* join all but the read thread (joined by the join thread) */
	int join_bad = 0, join_r = 0;
	void *ret = NULL;
	for (int i = 1; i < NTH && !join_bad; i++) {
		if (i == T_READ)
			continue;
		ret = NULL;
		join_r = pthread_clockjoin_np(th[i].handle, &ret, CLOCK_MONOTONIC, &dl);
		if (join_r == ETIMEDOUT)
			thread_timeout(i, "finished its wait but never exited");
		if (join_r || ret != &th[i])
			join_bad = i;
	}

	/* per-thread state: after the wait vs before the dump */
	check_all("tids", ck_tid);
	check_all("tls", ck_tls);
	check_all("fs_base", ck_fs);
	check_all("callee-saved", ck_regs);
	check_all("sigmask", ck_mask);
	check_all("sigaltstack", ck_altstack);
	check_all("comm", ck_comm);
	check_all("robust-list", ck_robust);
	if (!m->before.tid_addr_ok)
		wl_skip("clear_child_tid", "PR_GET_TID_ADDRESS unsupported (no CONFIG_CHECKPOINT_RESTORE)");
	else
		check_all("clear_child_tid", ck_tid_addr);
	if (__rseq_size == 0)
		wl_skip("rseq", "glibc did not register rseq (glibc.pthread.rseq=0?)");
	else
		check_all("rseq", ck_rseq);

	/* every wait ended the right way */
	for (int i = 1; i < NTH; i++)
		check_wait(i);
	printf("# futex: FUTEX_WAKE woke %ld waiter(s); spin: %llu iterations\n", woken,
	       (unsigned long long)spin_n);
	wl_check(alt_tid == th[T_SLEEP].before.tid && alt_onstack &&
		 alt_local >= (uintptr_t)alt_mem && alt_local < (uintptr_t)alt_mem + ALTSTACK_LEN,
		 "altstack-handler",
		 "SA_ONSTACK handler in tid %d (want %d), SS_ONSTACK %d, local %#lx, alt stack %p+%d",
		 alt_tid, th[T_SLEEP].before.tid, alt_onstack, (unsigned long)alt_local,
		 alt_mem, ALTSTACK_LEN);
	wl_check(!join_bad, "joined", "pthread_clockjoin_np(thread %d) returned %d, value %p (want 0, %p)",
		 join_bad, join_r, ret, (void *)&th[join_bad]);
	wl_finish();
}
