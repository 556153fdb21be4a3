// eventfds.c: the kernel's "event" file descriptors: eventfd (plain and
// EFD_SEMAPHORE) with its counter, timerfd (periodic, disarmed, absolute
// CLOCK_REALTIME), signalfd with a pending signal, epoll with its interest
// list (level- and edge-triggered, data words, keyed by fd number), and
// inotify with a watch.
// build:
//
// Why it matters: event loops keep all their state in these fds. A lost
// eventfd counter is a lost wakeup, a timerfd restored without its interval
// stops a program's clock, a signalfd that lost its mask or the pending
// signal loses an event, an epoll fd restored with the wrong data words or
// with registrations keyed by other fd numbers makes the program dispatch
// events to the wrong handler (or EPOLL_CTL_MOD/DEL fail with ENOENT), an
// epoll watching a copy instead of the program's own eventfd never wakes
// up, and an inotify fd with a different watch descriptor or mask
// silently drops file events.
//
// fds (in variables, numbers printed as a "#" line):
//   efd    eventfd(5, EFD_NONBLOCK) + write 37 = 42; also in epoll
//          (EPOLLIN, data 0x1111). The epoll checks run first (they do not
//          consume it), then "eventfd-*" drains it, then "epoll-same-file"
//          proves the epoll registration watches this very file.
//   esem   eventfd(3, EFD_SEMAPHORE|EFD_NONBLOCK): only for "eventfd-sem*"
//   eout   eventfd(0, EFD_NONBLOCK): epoll only (EPOLLIN|EPOLLOUT, 0x3333)
//   pr/pw  pipe, 3 bytes in it; pr in epoll (EPOLLIN|EPOLLET, 0x2222)
//   ep     epoll_create1(EPOLL_CLOEXEC); no epoll_wait before the dump (the
//          edge of the pipe must still be pending)
//   tper   timerfd CLOCK_MONOTONIC, 50 ms then every 20 ms, blocking
//   toff   timerfd CLOCK_MONOTONIC, armed then disarmed
//   tabs   timerfd CLOCK_REALTIME, TFD_TIMER_ABSTIME, now + 3600 s
//   sfd    signalfd {SIGUSR1, SIGRTMIN+2}, SFD_NONBLOCK|SFD_CLOEXEC; both
//          blocked; SIGRTMIN+2 raised (pending) before the pidfile
//   ino    inotify_init1(IN_NONBLOCK), IN_CREATE|IN_DELETE watch on a temp dir
//
// Usage: eventfds PIDFILE [TMPDIR]
// WL_SABOTAGE=1: reads the eventfd after the pidfile is written (its counter
// is gone, as after a restore that recreated it empty): "eventfd-read",
// "eventfd-fdinfo", "epoll-wait" and "epoll-after-ctl" must FAIL.
#include "wl.h"
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#define MS 1000000L
#define D_EFD 0x1111ull
#define D_EFD2 0x1112ull /* efd's data after EPOLL_CTL_MOD */
#define D_PIPE 0x2222ull
#define D_EOUT 0x3333ull
#define MAXTFD 8

static int efd, esem, eout, pr, pw, ep, tper, toff, tabs, sfd, ino, wd;
static char dir[512], path_new[600];
static struct timespec abs_target; /* tabs expires then (CLOCK_REALTIME) */
static int sigrt2;        /* SIGRTMIN+2 */

/* state recorded before the pidfile */
static long long cnt_efd_before = -1, cnt_sem_before = -1;
static char sem_line_before[64];
static char tfd_before[1024];
static char sigmask_before[64];
static char inotify_before[512];
static char tclock_before[3][128];

/* ---- /proc/self/fdinfo ---- */

/* Copy the rest of the first fdinfo line of fd starting with key (without
 * the key and the newline) into out. Returns 1 if found. */
static int fdinfo_field(int fd, const char *key, char *out, size_t outlen)
{
	char path[64], buf[8192];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	out[0] = 0;
	if (wl_read_file(path, buf, sizeof buf) < 0)
		return 0;
	size_t klen = strlen(key);
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, klen))
			continue;
		char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) - klen : strlen(l) - klen;
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, l + klen, n);
		out[n] = 0;
		return 1;
	}
	return 0;
}

/* eventfd-count (hex), or -1 */
static long long eventfd_count(int fd)
{
	char v[64];
	if (!fdinfo_field(fd, "eventfd-count:", v, sizeof v))
		return -1;
	return (long long)strtoull(v, NULL, 16);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* The epoll fd's "tfd:" lines, each cut before " ino:" (the pipe is
 * necessarily a new inode after a restore), sorted (the kernel lists them
 * in struct file address order), joined with " | ". */
static int epoll_tfds(int fd, char *out, size_t outlen)
{
	char path[64], buf[8192], lines[MAXTFD][160];
	int n = 0;
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	out[0] = 0;
	if (wl_read_file(path, buf, sizeof buf) < 0)
		return -1;
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "tfd:", 4) || n == MAXTFD)
			continue;
		char *e = strchr(l, '\n'), *cut = strstr(l, " ino:");
		if (!e)
			e = l + strlen(l);
		if (cut && cut < e)
			e = cut;
		size_t len = (size_t)(e - l);
		while (len && l[len - 1] == ' ')
			len--;
		if (len >= sizeof lines[0])
			len = sizeof lines[0] - 1;
		memcpy(lines[n], l, len);
		lines[n][len] = 0;
		n++;
	}
	qsort(lines, n, sizeof lines[0], cmp_str);
	size_t pos = 0;
	for (int i = 0; i < n && pos < outlen; i++)
		pos += snprintf(out + pos, outlen - pos, "%s%s", i ? " | " : "", lines[i]);
	return n;
}

/* "clockid: N, settime flags: F" of a timerfd */
static void timerfd_clock(int fd, char *out, size_t outlen)
{
	char c[32] = "?", f[32] = "?";
	fdinfo_field(fd, "clockid:", c, sizeof c);
	fdinfo_field(fd, "settime flags:", f, sizeof f);
	snprintf(out, outlen, "clockid:%s settime flags:%s", c, f);
}

/* ---- epoll ---- */

struct evset {
	int n;
	uint64_t data[16];
	uint32_t ev[16];
};

/* epoll_wait until every data word in want[] was reported or timeout_ms
 * passed (at least one call); events of one data word are OR-ed. */
static void ep_collect(struct evset *s, const uint64_t *want, int nwant, int timeout_ms,
		       int *calls)
{
	double deadline = wl_now() + timeout_ms / 1000.0;
	memset(s, 0, sizeof *s);
	*calls = 0;
	for (;;) {
		struct epoll_event evs[16];
		double left = deadline - wl_now();
		int r = epoll_wait(ep, evs, 16, left > 0 ? (int)(left * 1000) + 1 : 0);
		if (r < 0 && errno != EINTR)
			break;
		++*calls;
		for (int i = 0; i < r; i++) {
			int j = 0;
			while (j < s->n && s->data[j] != evs[i].data.u64)
				j++;
			if (j == s->n && s->n < 16) {
				s->data[s->n] = evs[i].data.u64;
				s->ev[s->n++] = 0;
			}
			if (j < 16)
				s->ev[j] |= evs[i].events;
		}
		int have = 0;
		for (int k = 0; k < nwant; k++)
			for (int j = 0; j < s->n; j++)
				if (s->data[j] == want[k]) {
					have++;
					break;
				}
		if (have == nwant || wl_now() >= deadline)
			break;
		if (r > 0) { /* level-triggered fds are always ready: no spinning */
			struct timespec ts = {0, 5 * MS};
			nanosleep(&ts, NULL);
		}
	}
}

/* canonical text "data:events ..." sorted by data */
static void evset_str(const uint64_t *data, const uint32_t *ev, int n, char *out,
		      size_t outlen)
{
	char items[16][48];
	for (int i = 0; i < n && i < 16; i++)
		snprintf(items[i], sizeof items[i], "%#llx:%#x", (unsigned long long)data[i],
			 ev[i]);
	qsort(items, n < 16 ? n : 16, sizeof items[0], cmp_str);
	size_t pos = 0;
	out[0] = 0;
	for (int i = 0; i < n && i < 16 && pos < outlen; i++)
		pos += snprintf(out + pos, outlen - pos, "%s%s", i ? " " : "", items[i]);
	if (n == 0)
		snprintf(out, outlen, "(nothing)");
}

/* one check: collect, compare the set with the expected one exactly */
static void ep_expect(const char *name, const uint64_t *data, const uint32_t *ev, int n,
		      int timeout_ms)
{
	struct evset s;
	int calls;
	char want[512], got[512];
	ep_collect(&s, data, n, timeout_ms, &calls);
	evset_str(data, ev, n, want, sizeof want);
	evset_str(s.data, s.ev, s.n, got, sizeof got);
	if (calls > 1)
		printf("# %s: needed %d epoll_wait calls\n", name, calls);
	wl_check(strcmp(want, got) == 0, name, "expected {%s} got {%s}", want, got);
}

static void set_register(int fd, uint32_t events, uint64_t data, int op)
{
	struct epoll_event e = {.events = events, .data.u64 = data};
	if (epoll_ctl(ep, op, fd, &e) < 0)
		wl_setup_fail("epoll_ctl");
}

/* ---- small helpers ---- */

static int poll_in(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	double deadline = wl_now() + timeout_ms / 1000.0;
	for (;;) {
		double left = deadline - wl_now();
		int r = poll(&p, 1, left > 0 ? (int)(left * 1000) + 1 : 0);
		if (r >= 0 || errno != EINTR)
			return r > 0 && (p.revents & POLLIN);
	}
}

/* read a uint64_t from an eventfd/timerfd: the value, or -errno */
static long long read_u64(int fd)
{
	uint64_t v;
	ssize_t r;
	while ((r = read(fd, &v, sizeof v)) < 0 && errno == EINTR)
		;
	if (r == (ssize_t)sizeof v)
		return (long long)v;
	return r < 0 ? -errno : -EIO;
}

static const char *err_str(long long v)
{
	static char buf[64];
	if (v >= 0)
		snprintf(buf, sizeof buf, "%lld", v);
	else
		snprintf(buf, sizeof buf, "error %s", strerror((int)-v));
	return buf;
}

static void fd_link(int fd, char *out, size_t outlen)
{
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, out, outlen - 1);
	out[n > 0 ? n : 0] = 0;
	if (strncmp(out, "pipe:", 5) == 0)
		out[5] = 0; /* a restored pipe is a new inode */
}

static int *const all_fds[] = {&efd, &esem, &eout, &pr, &pw, &ep, &tper, &toff, &tabs, &sfd, &ino};
#define NFDS ((int)(sizeof all_fds / sizeof all_fds[0]))
static const char *const fd_names[NFDS] = {"efd", "esem", "eout", "pr", "pw", "ep",
					   "tper", "toff", "tabs", "sfd", "ino"};
static char links_before[NFDS][128];

static uint64_t sigset_bits(const sigset_t *m)
{
	uint64_t bits = 0;
	for (int s = 1; s <= 64; s++)
		if (sigismember(m, s) == 1)
			bits |= 1ull << (s - 1);
	return bits;
}

/* ---- setup ---- */

static void setup(void)
{
	/* eventfds */
	efd = eventfd(5, EFD_NONBLOCK);
	esem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	eout = eventfd(0, EFD_NONBLOCK);
	if (efd < 0 || esem < 0 || eout < 0)
		wl_setup_fail("eventfd");
	uint64_t add = 37;
	if (write(efd, &add, sizeof add) != (ssize_t)sizeof add)
		wl_setup_fail("write eventfd");

	/* pipe with 3 bytes */
	int p[2];
	if (pipe(p) < 0)
		wl_setup_fail("pipe");
	pr = p[0];
	pw = p[1];

	/* epoll: no epoll_wait before the dump */
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		wl_setup_fail("epoll_create1");
	set_register(efd, EPOLLIN, D_EFD, EPOLL_CTL_ADD);
	set_register(pr, EPOLLIN | EPOLLET, D_PIPE, EPOLL_CTL_ADD);
	set_register(eout, EPOLLIN | EPOLLOUT, D_EOUT, EPOLL_CTL_ADD);
	if (write(pw, "abc", 3) != 3)
		wl_setup_fail("write pipe");

	/* timerfds */
	tper = timerfd_create(CLOCK_MONOTONIC, 0);
	toff = timerfd_create(CLOCK_MONOTONIC, 0);
	tabs = timerfd_create(CLOCK_REALTIME, 0);
	if (tper < 0 || toff < 0 || tabs < 0)
		wl_setup_fail("timerfd_create");
	struct itimerspec per = {{0, 20 * MS}, {0, 50 * MS}};
	struct itimerspec ten = {{0, 0}, {10, 0}}, zero = {{0, 0}, {0, 0}};
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	abs_target = now;
	abs_target.tv_sec += 3600;
	struct itimerspec abst = {{0, 0}, abs_target};
	if (timerfd_settime(tper, 0, &per, NULL) || timerfd_settime(toff, 0, &ten, NULL) ||
	    timerfd_settime(toff, 0, &zero, NULL) ||
	    timerfd_settime(tabs, TFD_TIMER_ABSTIME, &abst, NULL))
		wl_setup_fail("timerfd_settime");

	/* signalfd with SIGRTMIN+2 pending */
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, sigrt2);
	if (sigprocmask(SIG_BLOCK, &m, NULL) < 0)
		wl_setup_fail("sigprocmask");
	sfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		wl_setup_fail("signalfd");
	if (raise(sigrt2) != 0)
		wl_setup_fail("raise");

	/* inotify */
	ino = inotify_init1(IN_NONBLOCK);
	if (ino < 0)
		wl_setup_fail("inotify_init1");
	wd = inotify_add_watch(ino, dir, IN_CREATE | IN_DELETE);
	if (wd < 0)
		wl_setup_fail("inotify_add_watch");
}

static void record_before(void)
{
	cnt_efd_before = eventfd_count(efd);
	cnt_sem_before = eventfd_count(esem);
	fdinfo_field(esem, "eventfd-semaphore:", sem_line_before, sizeof sem_line_before);
	if (epoll_tfds(ep, tfd_before, sizeof tfd_before) < 0)
		wl_setup_fail("fdinfo of the epoll fd");
	fdinfo_field(sfd, "sigmask:", sigmask_before, sizeof sigmask_before);
	fdinfo_field(ino, "inotify wd:", inotify_before, sizeof inotify_before);
	timerfd_clock(tper, tclock_before[0], sizeof tclock_before[0]);
	timerfd_clock(toff, tclock_before[1], sizeof tclock_before[1]);
	timerfd_clock(tabs, tclock_before[2], sizeof tclock_before[2]);
	for (int i = 0; i < NFDS; i++)
		fd_link(*all_fds[i], links_before[i], sizeof links_before[i]);
}

/* ---- checks ---- */

static void check_kinds(void)
{
	int bad = -1;
	char now[128] = "";
	for (int i = 0; i < NFDS && bad < 0; i++) {
		fd_link(*all_fds[i], now, sizeof now);
		if (strcmp(now, links_before[i]))
			bad = i;
	}
	if (bad >= 0)
		wl_fail("fd-kinds", "%s (fd %d): expected %s got %s", fd_names[bad],
			*all_fds[bad], links_before[bad], now[0] ? now : "(not open)");
	else
		wl_ok("fd-kinds");
}

static void check_epoll(void)
{
	wl_check(fcntl(ep, F_GETFD) == FD_CLOEXEC, "epoll-cloexec", "F_GETFD %d",
		 fcntl(ep, F_GETFD));

	/* interest list as the kernel shows it, before any epoll_ctl */
	char after[1024];
	int n = epoll_tfds(ep, after, sizeof after);
	wl_check(n == 3 && strcmp(after, tfd_before) == 0, "epoll-fdinfo",
		 "expected [%s] got %d line(s) [%s]", tfd_before, n, after);

	/* first epoll_wait: LT efd, ET pipe (edge still pending), LT eout */
	uint64_t d1[] = {D_EFD, D_PIPE, D_EOUT};
	uint32_t e1[] = {EPOLLIN, EPOLLIN, EPOLLOUT};
	ep_expect("epoll-wait", d1, e1, 3, 1000);

	/* registrations are keyed by the original fd numbers */
	struct epoll_event mod = {.events = EPOLLIN, .data.u64 = D_EFD2};
	struct epoll_event mod2 = {.events = EPOLLIN | EPOLLOUT, .data.u64 = D_EOUT};
	int r1 = epoll_ctl(ep, EPOLL_CTL_MOD, efd, &mod);
	int e_1 = errno;
	int r2 = epoll_ctl(ep, EPOLL_CTL_MOD, eout, &mod2);
	int e_2 = errno;
	int r3 = epoll_ctl(ep, EPOLL_CTL_DEL, pr, NULL);
	int e_3 = errno;
	wl_check(!r1 && !r2 && !r3, "epoll-ctl",
		 "MOD efd(%d): %s, MOD eout(%d): %s, DEL pr(%d): %s", efd,
		 r1 ? strerror(e_1) : "ok", eout, r2 ? strerror(e_2) : "ok", pr,
		 r3 ? strerror(e_3) : "ok");

	/* a new edge on the pipe must not be reported any more */
	if (write(pw, "d", 1) != 1)
		printf("# write to the pipe failed: %s\n", strerror(errno));
	uint64_t d2[] = {D_EFD2, D_EOUT};
	uint32_t e2[] = {EPOLLIN, EPOLLOUT};
	ep_expect("epoll-after-ctl", d2, e2, 2, 1000);
	char buf[16];
	ssize_t r = read(pr, buf, sizeof buf);
	wl_check(r == 4 && memcmp(buf, "abcd", 4) == 0, "pipe-content",
		 "read %zd bytes (want \"abcd\")", r);
}

static void check_eventfd(void)
{
	long long c = eventfd_count(efd), s = eventfd_count(esem);
	wl_check(cnt_efd_before == 42 && cnt_sem_before == 3, "eventfd-fdinfo-before",
		 "before the dump: efd count %lld (want 42), esem count %lld (want 3)",
		 cnt_efd_before, cnt_sem_before);
	wl_check(c == 42 && s == 3, "eventfd-fdinfo",
		 "efd count %lld (want 42), esem count %lld (want 3)", c, s);
	char sl[64];
	if (!sem_line_before[0])
		wl_skip("eventfd-sem-flag", "the kernel prints no eventfd-semaphore: line");
	else
		wl_check(fdinfo_field(esem, "eventfd-semaphore:", sl, sizeof sl) &&
				 strcmp(sl, sem_line_before) == 0,
			 "eventfd-sem-flag", "eventfd-semaphore:%s (was %s)", sl,
			 sem_line_before);

	int fl = fcntl(efd, F_GETFL);
	wl_check(fl >= 0 && (fl & O_NONBLOCK), "eventfd-nonblock", "F_GETFL %#o", fl);
	long long v1 = read_u64(efd);
	long long v2 = read_u64(efd);
	char s1[64];
	snprintf(s1, sizeof s1, "%s", err_str(v1));
	wl_check(v1 == 42 && v2 == -EAGAIN, "eventfd-read",
		 "first read %s (want 42), second read %s (want EAGAIN)", s1, err_str(v2));

	long long r[4];
	for (int i = 0; i < 4; i++)
		r[i] = read_u64(esem);
	char s2[3][64];
	for (int i = 0; i < 3; i++)
		snprintf(s2[i], sizeof s2[i], "%s", err_str(r[i]));
	wl_check(r[0] == 1 && r[1] == 1 && r[2] == 1 && r[3] == -EAGAIN, "eventfd-semaphore",
		 "reads %s, %s, %s, %s (want 1, 1, 1, EAGAIN)", s2[0], s2[1], s2[2],
		 err_str(r[3]));

	/* the epoll registration watches this very eventfd: drained, it is no
	 * longer reported; written, it is again */
	uint64_t d1[] = {D_EOUT};
	uint32_t e1[] = {EPOLLOUT};
	ep_expect("epoll-same-file", d1, e1, 1, 1000);
	uint64_t one = 1;
	if (write(efd, &one, sizeof one) != (ssize_t)sizeof one)
		printf("# write to the eventfd failed: %s\n", strerror(errno));
	uint64_t d2[] = {D_EFD2, D_EOUT};
	uint32_t e2[] = {EPOLLIN, EPOLLOUT};
	ep_expect("epoll-same-file-wakeup", d2, e2, 2, 1000);
}

static void check_timerfd(void)
{
	char now[3][128];
	timerfd_clock(tper, now[0], sizeof now[0]);
	timerfd_clock(toff, now[1], sizeof now[1]);
	timerfd_clock(tabs, now[2], sizeof now[2]);
	int bad = -1;
	for (int i = 0; i < 3 && bad < 0; i++)
		if (strcmp(now[i], tclock_before[i]))
			bad = i;
	wl_check(bad < 0, "timerfd-clock", "timerfd #%d: expected \"%s\" got \"%s\"", bad,
		 bad >= 0 ? tclock_before[bad] : "", bad >= 0 ? now[bad] : "");

	/* periodic */
	struct itimerspec g;
	memset(&g, 0, sizeof g);
	int gr = timerfd_gettime(tper, &g);
	wl_check(gr == 0 && g.it_interval.tv_sec == 0 && g.it_interval.tv_nsec == 20 * MS &&
			 g.it_value.tv_sec == 0 && g.it_value.tv_nsec > 0 &&
			 g.it_value.tv_nsec <= 20 * MS,
		 "timerfd-interval", "interval %lld.%09ld value %lld.%09ld (want 0.020, (0, 0.020])",
		 (long long)g.it_interval.tv_sec, g.it_interval.tv_nsec,
		 (long long)g.it_value.tv_sec, g.it_value.tv_nsec);
	int fl = fcntl(tper, F_GETFL);
	wl_check(fl >= 0 && !(fl & O_NONBLOCK), "timerfd-blocking", "F_GETFL %#o", fl);
	long long first = poll_in(tper, 2000) ? read_u64(tper) : -ETIMEDOUT;
	wl_check(first >= 1, "timerfd-read", "first read %s (want >= 1 expiration)",
		 err_str(first));
	long long total = 0, bad_read = 0;
	double end = wl_now() + 0.3;
	while (wl_now() < end) {
		int left = (int)((end - wl_now()) * 1000) + 1;
		if (!poll_in(tper, left))
			continue;
		long long v = read_u64(tper);
		if (v > 0)
			total += v;
		else
			bad_read = v;
	}
	wl_check(total >= 5 && total <= 30 && !bad_read, "timerfd-firing",
		 "%lld expirations in 300 ms (want 5..30), bad read %s", total,
		 err_str(bad_read));

	/* disarmed */
	memset(&g, 0xff, sizeof g);
	gr = timerfd_gettime(toff, &g);
	wl_check(gr == 0 && !g.it_value.tv_sec && !g.it_value.tv_nsec &&
			 !g.it_interval.tv_sec && !g.it_interval.tv_nsec && !poll_in(toff, 0),
		 "timerfd-disarmed", "value %lld.%09ld interval %lld.%09ld (want 0/0, not readable)",
		 (long long)g.it_value.tv_sec, g.it_value.tv_nsec,
		 (long long)g.it_interval.tv_sec, g.it_interval.tv_nsec);

	/* absolute CLOCK_REALTIME one-shot, one hour ahead */
	memset(&g, 0, sizeof g);
	gr = timerfd_gettime(tabs, &g);
	wl_check(gr == 0 && g.it_value.tv_sec >= 3500 && g.it_value.tv_sec < 3600 &&
			 !g.it_interval.tv_sec && !g.it_interval.tv_nsec && !poll_in(tabs, 0),
		 "timerfd-abs", "value %lld.%09ld interval %lld.%09ld (want 3500..3600 s, 0, not fired)",
		 (long long)g.it_value.tv_sec, g.it_value.tv_nsec,
		 (long long)g.it_interval.tv_sec, g.it_interval.tv_nsec);
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	printf("# timerfd-abs: expires %+.3f s from the original absolute time\n",
	       (double)(rt.tv_sec + g.it_value.tv_sec - abs_target.tv_sec) +
		       (rt.tv_nsec + g.it_value.tv_nsec - abs_target.tv_nsec) / 1e9);
}

static void check_signalfd(void)
{
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	int blocked = sigismember(&cur, SIGUSR1) == 1 && sigismember(&cur, sigrt2) == 1;
	wl_check(blocked, "signalfd-blocked", "SIGUSR1 %s, SIGRTMIN+2 %s",
		 sigismember(&cur, SIGUSR1) == 1 ? "blocked" : "NOT blocked",
		 sigismember(&cur, sigrt2) == 1 ? "blocked" : "NOT blocked");
	if (!blocked) { /* else the kill() below would end us */
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, SIGUSR1);
		sigaddset(&m, sigrt2);
		sigprocmask(SIG_BLOCK, &m, NULL);
	}

	sigset_t want;
	sigemptyset(&want);
	sigaddset(&want, SIGUSR1);
	sigaddset(&want, sigrt2);
	char m[64];
	fdinfo_field(sfd, "sigmask:", m, sizeof m);
	uint64_t got = strtoull(m, NULL, 16);
	wl_check(got == sigset_bits(&want) && strcmp(m, sigmask_before) == 0, "signalfd-mask",
		 "sigmask %s (want %016llx, before the dump %s)", m,
		 (unsigned long long)sigset_bits(&want), sigmask_before);
	wl_check(fcntl(sfd, F_GETFD) == FD_CLOEXEC, "signalfd-cloexec", "F_GETFD %d",
		 fcntl(sfd, F_GETFD));
	int fl = fcntl(sfd, F_GETFL);
	wl_check(fl >= 0 && (fl & O_NONBLOCK), "signalfd-nonblock", "F_GETFL %#o", fl);

	struct signalfd_siginfo si;
	memset(&si, 0, sizeof si);
	ssize_t r = read(sfd, &si, sizeof si);
	int err = errno;
	wl_check(r == (ssize_t)sizeof si && (int)si.ssi_signo == sigrt2, "signalfd-pending",
		 "read %zd (%s), ssi_signo %u (want SIGRTMIN+2 = %d)", r,
		 r < 0 ? strerror(err) : "ok", si.ssi_signo, sigrt2);
	if (r == (ssize_t)sizeof si && (int)si.ssi_signo == sigrt2)
		wl_check(si.ssi_code == SI_TKILL && (pid_t)si.ssi_pid == getpid(),
			 "signalfd-siginfo", "ssi_code %d ssi_pid %u (want SI_TKILL %d, %d)",
			 si.ssi_code, si.ssi_pid, SI_TKILL, (int)getpid());
	r = read(sfd, &si, sizeof si);
	err = errno;
	wl_check(r < 0 && err == EAGAIN, "signalfd-empty", "second read %zd (%s), signo %u",
		 r, r < 0 ? strerror(err) : "a signal", si.ssi_signo);

	kill(getpid(), SIGUSR1);
	memset(&si, 0, sizeof si);
	r = poll_in(sfd, 1000) ? read(sfd, &si, sizeof si) : -1;
	err = errno;
	wl_check(r == (ssize_t)sizeof si && si.ssi_signo == SIGUSR1 &&
			 (pid_t)si.ssi_pid == getpid() && si.ssi_code == SI_USER,
		 "signalfd-new", "read %zd, signo %u code %d pid %u (want SIGUSR1, SI_USER, %d)",
		 r, si.ssi_signo, si.ssi_code, si.ssi_pid, (int)getpid());
	(void)err;
}

static void check_inotify(void)
{
	char line[512];
	fdinfo_field(ino, "inotify wd:", line, sizeof line);
	unsigned lwd = 0, mask = 0;
	char *mp = strstr(line, "mask:");
	sscanf(line, "%x", &lwd);
	if (mp)
		sscanf(mp + 5, "%x", &mask);
	wl_check(strcmp(line, inotify_before) == 0 && (int)lwd == wd &&
			 (mask & (IN_CREATE | IN_DELETE)) == (IN_CREATE | IN_DELETE),
		 "inotify-fdinfo", "expected \"inotify wd:%s\" got \"inotify wd:%s\"",
		 inotify_before, line);

	union {
		struct inotify_event e;
		char b[4096];
	} u;
	ssize_t r = read(ino, &u, sizeof u);
	int err = errno;
	wl_check(r < 0 && err == EAGAIN, "inotify-empty",
		 "read %zd (%s) before any change (want EAGAIN)", r,
		 r < 0 ? strerror(err) : "an event");

	const char *const names[2] = {"IN_CREATE", "IN_DELETE"};
	for (int step = 0; step < 2; step++) {
		uint32_t want = step ? IN_DELETE : IN_CREATE;
		if (step == 0) {
			int fd = open(path_new, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd >= 0)
				close(fd);
			else
				printf("# create %s: %s\n", path_new, strerror(errno));
		} else if (unlink(path_new) < 0) {
			printf("# unlink %s: %s\n", path_new, strerror(errno));
		}
		memset(&u, 0, sizeof u);
		r = poll_in(ino, 1000) ? read(ino, &u, sizeof u) : -1;
		const char *nm = r >= (ssize_t)sizeof u.e && u.e.len ? u.e.name : "";
		int okay = r >= (ssize_t)sizeof u.e && u.e.wd == wd && u.e.mask == want &&
			   strcmp(nm, "new-file") == 0 &&
			   r == (ssize_t)(sizeof u.e + u.e.len); /* exactly one event */
		wl_check(okay, step ? "inotify-delete" : "inotify-create",
			 "read %zd: wd %d mask %#x name \"%s\" (want wd %d %s \"new-file\", one event)",
			 r, u.e.wd, u.e.mask, nm, wd, names[step]);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	sigrt2 = SIGRTMIN + 2;
	wl_mkdtemp(wl_tmpbase(argc > 2 ? argv[2] : NULL), "eventfds", dir, sizeof dir);
	snprintf(path_new, sizeof path_new, "%s/new-file", dir);
	wl_tmp_register(path_new); /* removed before the dir (reverse order) */
	setup();
	record_before();

	wl_write_pidfile(argv[1]);
	if (wl_sabotage()) { /* as a restore that recreated the eventfd empty */
		uint64_t v;
		if (read(efd, &v, sizeof v) < 0)
			printf("# sabotage read failed: %s\n", strerror(errno));
	}
	wl_wait_usr2();

	printf("# fds: efd %d esem %d eout %d pipe %d/%d ep %d tper %d toff %d tabs %d "
	       "sfd %d ino %d (wd %d)\n",
	       efd, esem, eout, pr, pw, ep, tper, toff, tabs, sfd, ino, wd);
	check_kinds();
	check_epoll();   /* before the eventfd checks drain efd */
	check_eventfd(); /* ends with epoll-same-file */
	check_timerfd();
	check_signalfd();
	check_inotify();
	wl_finish();
}
