// bigmem.c: a process whose state is mostly one big anonymous mapping, for
// scripts/bench (dump/restore throughput against a plain write/read baseline).
// build:
//
// Usage:
//   bigmem PIDFILE MIB
//     mmap MIB MiB of private anonymous memory, fill every byte with a
//     non-zero pseudo-random pattern (no zero-page or same-page shortcut can
//     apply), write the PID to PIDFILE.tmp and rename it to PIDFILE, then
//     loop in pause(). On SIGUSR2: verify the whole buffer, write "ok\n" or
//     "bad\n" to PIDFILE.result (tmp + rename), exit 0 (intact) or 1 (not).
//     A restored process is not the harness's child, so the result file is
//     how the harness learns the outcome. Watchdog: killed by SIGALRM if no
//     SIGUSR2 arrives within BIGMEM_TIMEOUT_SEC (default 900) seconds.
//     (pause() can miss a SIGUSR2 that lands between the flag test and the
//     call: the harness re-sends SIGUSR2 until the process is gone.)
//   bigmem PIDFILE MIB --procs N
//     A tree of N processes (1 <= N <= 256) holding MIB MiB each. The parent
//     forks N-1 children before it touches any memory; each of the N
//     processes maps and fills its own MIB MiB with its own pattern (seeded
//     by its index: the parent is index 0 and uses the single-process
//     pattern), and each child then tells the parent through a pipe (one
//     byte, the pipe is closed by everyone before the PIDFILE appears). The
//     parent fills its own memory, waits for all N-1 bytes, then writes
//     PIDFILE (its own PID) and waits in pause() like the single process.
//     Every child waits in pause() too, with the same SIGUSR2 handler and
//     watchdog. On SIGUSR2 the parent's handler forwards SIGUSR2 to each
//     child not reaped yet (on every SIGUSR2 it gets, so a child that missed
//     one gets the next re-send); a child verifies its memory and exits 0
//     (intact) or 1 (not); the parent reaps every child (waitpid), verifies
//     its own memory and writes "ok\n" to PIDFILE.result only if all N were
//     intact, else "bad\n"; exit 0 or 1 likewise. A child that cannot set up
//     exits 3, and the parent then kills the others and exits 3 without
//     writing PIDFILE.
//   bigmem --baseline DIR MIB
//     Allocate and fill the same way, then time with CLOCK_MONOTONIC
//     (a) writing the buffer to a new file DIR/baseline.bin with write() in
//         8 MiB chunks, then fsync;
//     (b) unmapping the buffer, then reading the file back with read() (8 MiB
//         chunks) into a fresh anonymous mapping (from the page cache, as a
//         restore reads its freshly written image), then check the copy
//         against the pattern;
//     print "WRITE_S READ_S" and remove the file. This is what a dump and a
//     restore do at the least: move every byte once through the kernel.
//
// Exit status: 0 ok, 1 pattern mismatch, 3 setup/usage error.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024)
#define CHUNK (8 * MIB)
#define SEED 0x5eed5eed12345678ULL

#define MAX_PROCS 256

static volatile sig_atomic_t got_usr2;

/* --procs: the children not reaped yet (0: reaped or none); nkids stays 0 in
 * the single process and in every child, so there the handler only sets the
 * flag. */
static volatile pid_t kids[MAX_PROCS];
static volatile int nkids;

static void on_usr2(int sig)
{
	(void)sig;
	got_usr2 = 1;
	/* forward, on every SIGUSR2 (the harness re-sends it): a child that
	 * missed one in its pause() race gets the next. kill() is
	 * async-signal-safe; a reaped child's slot is cleared with SIGUSR2
	 * blocked, so this never signals a recycled PID. */
	int saved = errno;
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGUSR2);
	errno = saved;
}

static void kill_kids(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
				;
			kids[i] = 0;
		}
}

static void die(const char *what)
{
	fprintf(stderr, "bigmem: %s: %s\n", what, strerror(errno));
	kill_kids(); /* a --procs parent leaves no child behind */
	exit(3);
}

/* splitmix64 of the word index: every word is independent, so filling and
 * checking need no sequential state, and each byte is forced odd (non-zero). */
static inline uint64_t word_at(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return z | 0x0101010101010101ULL;
}

/* the pattern seed of process IDX of a --procs tree (0: the parent, and the
 * single process: SEED itself); an odd multiplier, so every index differs */
static uint64_t seed_of(unsigned idx)
{
	return SEED ^ (0xa0761d6478bd642fULL * idx);
}

static void fill(uint64_t *p, size_t words, uint64_t seed)
{
	for (size_t i = 0; i < words; i++)
		p[i] = word_at(seed, i);
}

/* index of the first wrong word, or -1 */
static long check(const uint64_t *p, size_t words, uint64_t seed)
{
	for (size_t i = 0; i < words; i++)
		if (p[i] != word_at(seed, i))
			return (long)i;
	return -1;
}

static uint64_t *alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static size_t parse_mib(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v == 0 || v > 1024 * 1024) {
		fprintf(stderr, "bigmem: bad size in MiB: '%s'\n", s);
		exit(3);
	}
	return v * MIB;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* write the whole string to path.tmp, fsync-free rename to path */
static int write_atomic(const char *path, const char *text)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	if (close(fd) != 0 || w != (ssize_t)n)
		return -1;
	return rename(tmp, path);
}

static int baseline(const char *dir, size_t len)
{
	uint64_t *buf = alloc(len);
	fill(buf, len / 8, SEED);

	char path[4200];
	if (snprintf(path, sizeof path, "%s/baseline.bin", dir) >= (int)sizeof path) {
		fprintf(stderr, "bigmem: directory name too long\n");
		return 3;
	}
	const char *c = (const char *)buf;

	double t0 = now();
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		die("create baseline.bin");
	for (size_t off = 0; off < len;) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;
		ssize_t w = write(fd, c + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write baseline.bin");
		off += (size_t)w;
	}
	if (fsync(fd) != 0)
		die("fsync baseline.bin");
	if (close(fd) != 0)
		die("close baseline.bin");
	double t_write = now() - t0;

	/* The source goes before the read-back, as the dumped process is gone
	 * (killed) before a restore: the new mapping then gets the memory just
	 * freed, like the restored process does. Keeping it would make the
	 * read-back draw on never-touched memory, which costs a VM about 3x
	 * more (the hypervisor has to back each new page) and would flatter
	 * the restore ratio. */
	if (munmap(buf, len) != 0)
		die("munmap");

	t0 = now();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open baseline.bin");
	char *copy = (char *)alloc(len);
	for (size_t off = 0; off < len;) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;
		ssize_t r = read(fd, copy + off, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read baseline.bin");
		if (r == 0) {
			fprintf(stderr, "bigmem: baseline.bin is short\n");
			return 3;
		}
		off += (size_t)r;
	}
	close(fd);
	double t_read = now() - t0;

	unlink(path);
	long bad = check((const uint64_t *)copy, len / 8, SEED);
	if (bad >= 0) {
		fprintf(stderr, "bigmem: baseline copy differs at byte %ld\n", bad * 8);
		return 1;
	}
	printf("%.6f %.6f\n", t_write, t_read);
	return 0;
}

static unsigned parse_procs(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v == 0 || v > MAX_PROCS) {
		fprintf(stderr, "bigmem: bad process count (1..%d): '%s'\n", MAX_PROCS, s);
		exit(3);
	}
	return (unsigned)v;
}

static void install_usr2(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) != 0)
		die("sigaction");
}

/* watchdog: a leaked bigmem (harness killed) must not hold memory forever;
 * ITIMER_REAL is part of the dumped state (and not inherited across fork:
 * every process of a tree arms its own) */
static void arm_watchdog(void)
{
	const char *to = getenv("BIGMEM_TIMEOUT_SEC");
	unsigned timeout = to && atoi(to) > 0 ? (unsigned)atoi(to) : 900;
	signal(SIGALRM, SIG_DFL);
	alarm(timeout);
}

/* process IDX (>= 1) of a --procs tree: fill, report through READY, wait for
 * SIGUSR2, verify, exit 0 (intact) or 1 (not); 3 on a setup error */
static void child_main(unsigned idx, size_t len, int ready)
{
	nkids = 0; /* the siblings in kids[] are not this process's to signal */
	install_usr2(); /* the same handler (inherited anyway): a re-sent SIGUSR2 is harmless */
	uint64_t *buf = alloc(len);
	fill(buf, len / 8, seed_of(idx));
	char b = 'r';
	ssize_t w;
	while ((w = write(ready, &b, 1)) < 0 && errno == EINTR)
		;
	if (w != 1)
		die("write to the ready pipe");
	close(ready);
	arm_watchdog();

	while (!got_usr2)
		pause(); /* the same race as the parent's: the parent forwards every re-send */
	alarm(0);

	long bad = check(buf, len / 8, seed_of(idx));
	if (bad >= 0) {
		fprintf(stderr, "bigmem: process %u (pid %d): memory differs at byte %ld of %zu\n",
			idx, (int)getpid(), bad * 8, len);
		exit(1);
	}
	exit(0);
}

/* bigmem PIDFILE MIB --procs N: the parent (index 0) of the tree */
static int tree_main(const char *pidfile, size_t len, unsigned procs)
{
	char result[4200];
	if (snprintf(result, sizeof result, "%s.result", pidfile) >= (int)sizeof result) {
		fprintf(stderr, "bigmem: pidfile name too long\n");
		return 3;
	}
	int ready[2];
	if (pipe(ready) != 0)
		die("pipe");
	install_usr2(); /* before the forks: no child is ever without it */

	/* fork first: the children get none of the parent's memory */
	for (unsigned i = 1; i < procs; i++) {
		pid_t c = fork();
		if (c < 0)
			die("fork");
		if (c == 0) {
			close(ready[0]);
			child_main(i, len, ready[1]);
		}
		kids[i - 1] = c;
		nkids = (int)i;
	}
	close(ready[1]);

	uint64_t *buf = alloc(len);
	fill(buf, len / 8, seed_of(0));

	/* one byte from each child once its memory is filled; EOF first means a
	 * child died before that */
	for (unsigned got = 0; got < procs - 1;) {
		char b[MAX_PROCS];
		ssize_t r = read(ready[0], b, sizeof b);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "bigmem: only %u of %u children reported their memory "
				"filled (a child failed)\n", got, procs - 1);
			kill_kids();
			return 3;
		}
		got += (unsigned)r;
	}
	close(ready[0]);

	char text[32];
	snprintf(text, sizeof text, "%d\n", (int)getpid());
	if (write_atomic(pidfile, text) != 0)
		die("write pidfile");
	arm_watchdog();

	while (!got_usr2)
		pause(); /* the handler has forwarded this SIGUSR2 to every child */

	/* Reap every child. Wait for its exit without reaping it (a zombie's
	 * PID cannot be reused), then reap it and clear its slot with SIGUSR2
	 * blocked, so the handler never signals a PID that is no longer ours. */
	int all_ok = 1;
	sigset_t usr2, old;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	for (int i = 0; i < nkids; i++) {
		pid_t k = kids[i];
		siginfo_t si;
		int rc;
		while ((rc = waitid(P_PID, (id_t)k, &si, WEXITED | WNOWAIT)) != 0 && errno == EINTR)
			;
		if (rc != 0) {
			fprintf(stderr, "bigmem: waitid(child %d, pid %d): %s\n", i + 1, (int)k,
				strerror(errno));
			all_ok = 0;
			continue;
		}
		sigprocmask(SIG_BLOCK, &usr2, &old);
		int st = 0;
		pid_t w;
		while ((w = waitpid(k, &st, 0)) < 0 && errno == EINTR)
			;
		kids[i] = 0;
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (w != k || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (w != k)
				fprintf(stderr, "bigmem: waitpid(child %d, pid %d): %s\n", i + 1,
					(int)k, strerror(errno));
			else if (WIFSIGNALED(st))
				fprintf(stderr, "bigmem: child %d (pid %d) killed by signal %d\n",
					i + 1, (int)k, WTERMSIG(st));
			else
				fprintf(stderr, "bigmem: child %d (pid %d) exited with status %d\n",
					i + 1, (int)k, WEXITSTATUS(st));
			all_ok = 0;
		}
	}
	alarm(0);

	long bad = check(buf, len / 8, seed_of(0));
	if (bad >= 0) {
		fprintf(stderr, "bigmem: process 0 (pid %d): memory differs at byte %ld of %zu\n",
			(int)getpid(), bad * 8, len);
		all_ok = 0;
	}
	if (write_atomic(result, all_ok ? "ok\n" : "bad\n") != 0)
		die("write result file");
	return all_ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--baseline") == 0)
		return baseline(argv[2], parse_mib(argv[3]));
	if (argc == 5 && strcmp(argv[3], "--procs") == 0)
		return tree_main(argv[1], parse_mib(argv[2]), parse_procs(argv[4]));
	if (argc != 3) {
		fprintf(stderr, "usage: bigmem PIDFILE MIB [--procs N] | bigmem --baseline DIR MIB\n");
		return 3;
	}
	const char *pidfile = argv[1];
	size_t len = parse_mib(argv[2]);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) != 0)
		die("sigaction");

	uint64_t *buf = alloc(len);
	fill(buf, len / 8, SEED);

	char text[32];
	snprintf(text, sizeof text, "%d\n", (int)getpid());
	if (write_atomic(pidfile, text) != 0)
		die("write pidfile");

	/* watchdog: a leaked bigmem (harness killed) must not hold memory
	 * forever; ITIMER_REAL is part of the dumped state */
	const char *to = getenv("BIGMEM_TIMEOUT_SEC");
	unsigned timeout = to && atoi(to) > 0 ? (unsigned)atoi(to) : 900;
	signal(SIGALRM, SIG_DFL);
	alarm(timeout);

	while (!got_usr2)
		pause(); /* SIGALRM (default action) ends the process: exit by signal */
	alarm(0);

	long bad = check(buf, len / 8, SEED);
	char result[4200];
	if (snprintf(result, sizeof result, "%s.result", pidfile) >= (int)sizeof result) {
		fprintf(stderr, "bigmem: pidfile name too long\n");
		return 3;
	}
	if (write_atomic(result, bad < 0 ? "ok\n" : "bad\n") != 0)
		die("write result file");
	if (bad >= 0) {
		fprintf(stderr, "bigmem: memory differs at byte %ld of %zu\n", bad * 8, len);
		return 1;
	}
	return 0;
}
