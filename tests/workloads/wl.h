/*
 * wl.h: the workload protocol in one place, shared by every C workload here
 * (header only: each NAME.c still builds alone with `gcc ... -o NAME NAME.c`
 * because a quoted include is looked up next to the source file).
 *
 * Protocol (see README.md):
 *   WORKLOAD PIDFILE [args...]
 *   set up state -> write PID to PIDFILE.tmp, rename to PIDFILE -> wait for
 *   SIGUSR2 (at most 60 s) -> verify, one line per check:
 *     "ok NAME" | "FAIL NAME: detail" | "skip NAME: reason" | "# comment"
 *   exit 0 = every check held, 1 = some check failed, 2 = timeout,
 *   3 = setup error (a "FAIL setup: ..." line says what).
 *
 * Waiting is done by polling a flag with short nanosleeps instead of one long
 * blocking call or a kernel timer, so the generic wait adds no state of its
 * own (no itimer, no POSIX timer) that the checkpointer would have to handle.
 * Every call here tolerates EINTR: a checkpointer may interrupt any syscall.
 */
#ifndef WL_H
#define WL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* 60 s; WL_TIMEOUT_SEC in the environment overrides it (to test the
 * timeout path itself) */
static inline double wl_timeout_sec(void)
{
	const char *s = getenv("WL_TIMEOUT_SEC");
	double t = s ? atof(s) : 0;
	return t > 0 ? t : 60;
}

static volatile sig_atomic_t wl_usr2_count; /* set by the SIGUSR2 handler */
static int wl_nfail;                         /* number of failed checks */
static char wl_outbuf[8192];                 /* stdout buffer: no malloc */

#define WL_MAX_TMP 32
static char wl_tmp[WL_MAX_TMP][512]; /* temp files/dirs removed at exit */
static int wl_ntmp;

static inline void wl_cleanup(void)
{
	while (wl_ntmp > 0)
		remove(wl_tmp[--wl_ntmp]); /* reverse order: files before dirs */
}

/* Remember a temp path (file or empty dir) to remove at exit. */
static inline void wl_tmp_register(const char *path)
{
	if (wl_ntmp < WL_MAX_TMP)
		snprintf(wl_tmp[wl_ntmp++], sizeof wl_tmp[0], "%s", path);
}

static inline void wl_init(void)
{
	/* static, line-buffered stdout: printing never allocates, so the heap
	 * layout is fixed once setup is done */
	setvbuf(stdout, wl_outbuf, _IOLBF, sizeof wl_outbuf);
	atexit(wl_cleanup);
}

static inline int wl_sabotage(void)
{
	const char *s = getenv("WL_SABOTAGE");
	return s && *s && strcmp(s, "0") != 0;
}

static inline void wl_ok(const char *name)
{
	printf("ok %s\n", name);
	fflush(stdout);
}

static inline void wl_skip(const char *name, const char *why)
{
	printf("skip %s: %s\n", name, why);
	fflush(stdout);
}

__attribute__((format(printf, 2, 3))) static inline void
wl_fail(const char *name, const char *fmt, ...)
{
	va_list ap;
	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	wl_nfail++;
}

/* Check: print "ok NAME" or "FAIL NAME: detail"; returns cond. */
__attribute__((format(printf, 3, 4))) static inline int
wl_check(int cond, const char *name, const char *fmt, ...)
{
	if (cond) {
		wl_ok(name);
	} else {
		va_list ap;
		printf("FAIL %s: ", name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
		fflush(stdout);
		wl_nfail++;
	}
	return cond;
}

/* A setup step failed: the workload cannot test anything. */
__attribute__((noreturn)) static inline void wl_setup_fail(const char *what)
{
	printf("FAIL setup: %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(3);
}

__attribute__((noreturn)) static inline void wl_finish(void)
{
	printf("# %s: %d check(s) failed\n", wl_nfail ? "FAILED" : "PASSED",
	       wl_nfail);
	fflush(stdout);
	exit(wl_nfail ? 1 : 0);
}

__attribute__((noreturn)) static inline void wl_timeout(void)
{
	printf("FAIL timeout\n");
	fflush(stdout);
	exit(2);
}

static inline double wl_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sleep `sec` seconds of CLOCK_MONOTONIC, whatever interrupts us. */
static inline void wl_sleep(double sec)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long ns = ts.tv_nsec + (long long)(sec * 1e9);
	ts.tv_sec += ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static inline void wl_on_usr2(int sig)
{
	(void)sig;
	wl_usr2_count++;
}

/* Default SIGUSR2 handler: just count (SA_RESTART: do not disturb others). */
static inline void wl_install_usr2(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_on_usr2;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) < 0)
		wl_setup_fail("sigaction(SIGUSR2)");
}

/* Poll for SIGUSR2 in 5 ms steps; FAIL timeout + exit 2 after 60 s. */
static inline void wl_wait_usr2(void)
{
	double deadline = wl_now() + wl_timeout_sec();
	while (!wl_usr2_count) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL); /* EINTR is fine: we loop */
		if (wl_now() > deadline)
			wl_timeout();
	}
}

/* Write our PID atomically: PIDFILE.tmp then rename. Raw syscalls only. */
static inline void wl_write_pidfile(const char *path)
{
	char tmp[4096], buf[32];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_setup_fail("open pidfile.tmp");
	if (write(fd, buf, len) != len)
		wl_setup_fail("write pidfile.tmp");
	close(fd);
	if (rename(tmp, path) < 0)
		wl_setup_fail("rename pidfile");
}

/* Base dir for temp files: the optional argument, else $TMPDIR, else /tmp. */
static inline const char *wl_tmpbase(const char *arg)
{
	if (arg && *arg)
		return arg;
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

/* Create BASE/stasis-wl-TAG-XXXXXX (removed at exit); path into out. */
static inline void wl_mkdtemp(const char *base, const char *tag, char *out,
			      size_t outlen)
{
	snprintf(out, outlen, "%s/stasis-wl-%s-XXXXXX", base, tag);
	if (!mkdtemp(out))
		wl_setup_fail("mkdtemp");
	wl_tmp_register(out);
}

/* Deterministic pattern: byte i of the stream named by seed. Never a long
 * run of zeros, so it is easy to tell from a lost (zero-filled) page. */
static inline uint8_t wl_pat(uint64_t seed, uint64_t i)
{
	uint64_t x = ((i >> 3) + 1) * 0x9E3779B97F4A7C15ull ^ (seed * 0xD1B54A32D192ED03ull);
	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> ((i & 7) * 8));
}

/* Fill p[0..n) with the pattern bytes base..base+n of stream seed. */
static inline void wl_fill(void *p, size_t n, uint64_t seed, uint64_t base)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = wl_pat(seed, base + i);
}

/* Index of the first byte that differs from the pattern, or -1. */
static inline long wl_mismatch(const void *p, size_t n, uint64_t seed,
			       uint64_t base)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != wl_pat(seed, base + i))
			return (long)i;
	return -1;
}

/* Index of the first non-zero byte, or -1. */
static inline long wl_nonzero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return (long)i;
	return -1;
}

/* Check p against the pattern; prints one ok/FAIL line. */
static inline int wl_check_pat(const char *name, const void *p, size_t n,
			       uint64_t seed, uint64_t base)
{
	long bad = wl_mismatch(p, n, seed, base);
	if (bad < 0) {
		wl_ok(name);
		return 1;
	}
	wl_fail(name, "byte %ld of %zu at %p: expected 0x%02x got 0x%02x", bad,
		n, (void *)((const uint8_t *)p + bad), wl_pat(seed, base + bad),
		((const uint8_t *)p)[bad]);
	return 0;
}

/* Read a whole (small, e.g. /proc) file into buf with raw read(): no malloc.
 * Returns the length, or -1. buf is NUL-terminated. */
static inline long wl_read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len + 1 < size) {
		ssize_t r = read(fd, buf + len, size - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += r;
	}
	close(fd);
	buf[len] = 0;
	return (long)len;
}

#endif /* WL_H */
