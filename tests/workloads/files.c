// files.c: the file descriptor table: regular files with their offsets and
// open flags, O_APPEND, FD_CLOEXEC, unusual fd numbers and dup()ed fds that
// share one open file description, a directory fd, /dev/null, /dev/zero,
// /dev/urandom, a file unlinked while open, and a memfd that is also mapped.
// build:
//
// Why it matters: a program's fds are numbers it keeps in variables; after
// restore each number must name the same kind of object, with the same
// offset (or the program reads/writes the wrong bytes), the same flags
// (O_APPEND lost = log lines overwritten; FD_CLOEXEC lost = fd leaks into
// children), the same sharing (two fds from dup() must keep moving one
// offset), and the same contents even when the file has no name anymore
// (unlinked temp files, memfds). No fd may be missing and none may leak in
// from the restorer.
//
// Usage: files PIDFILE [TMPDIR]
// fds inherited from the parent (other than 0-2) are listed as "#" lines
// and ignored; fds 0-2 are the restore command's after a restore.
// WL_SABOTAGE=1: moves the offset of the first regular file after the
// pidfile is written; "a-offset" must FAIL.
#include "wl.h"
#include <sys/mman.h>

#define PG 4096
#define MAXFD 1024
enum { S_A = 200, S_C, S_U, S_M, S_M2 };

struct fdsnap {
	int open, fl, fd_flags;
	char link[600];
	dev_t dev;
	ino_t ino;
};
static struct fdsnap before[MAXFD], after[MAXFD];
static int inherited[MAXFD];
static int fd_a, fd_b, fd_c, fd_dir, fd_null, fd_zero, fd_rand, fd_gone, fd_mem;
static unsigned char *memmap;
static char dir[512], path_a[600], path_b[600], path_c[600], path_inner[600],
	path_gone[600];

static void snap(struct fdsnap *s)
{
	for (int fd = 3; fd < MAXFD; fd++) {
		struct fdsnap *f = &s[fd];
		memset(f, 0, sizeof *f);
		if (inherited[fd] || (f->fd_flags = fcntl(fd, F_GETFD)) < 0)
			continue;
		f->open = 1;
		f->fl = fcntl(fd, F_GETFL) & ~O_LARGEFILE;
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(proc, f->link, sizeof f->link - 1);
		f->link[n > 0 ? n : 0] = 0;
		struct stat st;
		if (fstat(fd, &st) == 0) {
			f->dev = st.st_dev;
			f->ino = st.st_ino;
		}
	}
}

static int xopen(const char *path, int flags)
{
	int fd = open(path, flags, 0600);
	if (fd < 0)
		wl_setup_fail(path);
	return fd;
}

static void write_pattern(int fd, size_t len, uint64_t seed)
{
	static unsigned char buf[16384];
	wl_fill(buf, len, seed, 0);
	if (pwrite(fd, buf, len, 0) != (ssize_t)len)
		wl_setup_fail("write pattern");
}

static void setup(void)
{
	/* regular file, O_RDWR, offset 123, close-on-exec; dup2'ed to 42 */
	fd_a = xopen(path_a, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC);
	wl_tmp_register(path_a);
	write_pattern(fd_a, 8192, S_A);
	lseek(fd_a, 123, SEEK_SET);
	if (dup2(fd_a, 42) != 42)
		wl_setup_fail("dup2 42");

	/* O_APPEND log */
	fd_b = xopen(path_b, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC);
	wl_tmp_register(path_b);
	if (write(fd_b, "before\n", 7) != 7)
		wl_setup_fail("write b");

	/* O_RDONLY at offset 5000, no close-on-exec; dup2'ed to 100 */
	int w = xopen(path_c, O_WRONLY | O_CREAT | O_TRUNC);
	wl_tmp_register(path_c);
	write_pattern(w, 8192, S_C);
	close(w);
	fd_c = xopen(path_c, O_RDONLY);
	lseek(fd_c, 5000, SEEK_SET);
	if (dup2(fd_c, 100) != 100)
		wl_setup_fail("dup2 100");

	/* directory fd */
	w = xopen(path_inner, O_WRONLY | O_CREAT | O_TRUNC);
	wl_tmp_register(path_inner);
	if (write(w, "inner-content\n", 14) != 14)
		wl_setup_fail("write inner");
	close(w);
	fd_dir = xopen(dir, O_RDONLY | O_DIRECTORY);

	fd_null = xopen("/dev/null", O_RDWR);
	fd_zero = xopen("/dev/zero", O_RDONLY);
	fd_rand = xopen("/dev/urandom", O_RDONLY | O_CLOEXEC);

	/* a file unlinked while open: 10000 bytes, offset 4321 */
	fd_gone = xopen(path_gone, O_RDWR | O_CREAT | O_TRUNC);
	write_pattern(fd_gone, 10000, S_U);
	lseek(fd_gone, 4321, SEEK_SET);
	if (unlink(path_gone) < 0)
		wl_setup_fail("unlink");

	/* memfd: 3 pages, offset 4096, also mapped shared */
	fd_mem = memfd_create("wl-memfd", 0);
	if (fd_mem < 0)
		wl_setup_fail("memfd_create");
	write_pattern(fd_mem, 3 * PG, S_M);
	lseek(fd_mem, PG, SEEK_SET);
	memmap = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd_mem, 0);
	if (memmap == MAP_FAILED)
		wl_setup_fail("mmap memfd");
}

/* read n bytes at the current offset and compare with the pattern at off */
static void check_read(const char *name, int fd, size_t n, uint64_t seed, off_t off)
{
	unsigned char buf[256];
	ssize_t r = read(fd, buf, n);
	long bad = r == (ssize_t)n ? wl_mismatch(buf, n, seed, off) : 0;
	wl_check(r == (ssize_t)n && bad < 0, name,
		 "read %zd of %zu bytes at offset %lld, first wrong byte %ld", r, n,
		 (long long)off, bad);
}

static void check_offset(const char *name, int fd, off_t want)
{
	off_t got = lseek(fd, 0, SEEK_CUR);
	wl_check(got == want, name, "fd %d offset expected %lld got %lld", fd,
		 (long long)want, (long long)got);
}

static void check_table(void)
{
	int missing = -1, extra = -1, badfl = -1, badfd = -1, badlink = -1, badino = -1;
	for (int fd = 3; fd < MAXFD; fd++) {
		struct fdsnap *b = &before[fd], *a = &after[fd];
		if (b->open && !a->open && missing < 0)
			missing = fd;
		if (!b->open && a->open && extra < 0)
			extra = fd;
		if (!b->open || !a->open)
			continue;
		if (a->fl != b->fl && badfl < 0)
			badfl = fd;
		if (a->fd_flags != b->fd_flags && badfd < 0)
			badfd = fd;
		if (strcmp(a->link, b->link) && badlink < 0)
			badlink = fd;
		/* same inode for the named files; the unlinked file and the
		 * memfd are necessarily recreated */
		if (fd != fd_gone && fd != fd_mem && badino < 0 &&
		    (a->dev != b->dev || a->ino != b->ino))
			badino = fd;
	}
	if (missing >= 0 || extra >= 0)
		wl_fail("fd-set", "fd %d missing after restore (was %s); fd %d appeared (%s)",
			missing, missing >= 0 ? before[missing].link : "-", extra,
			extra >= 0 ? after[extra].link : "-");
	else
		wl_ok("fd-set");
	if (badfl >= 0)
		wl_fail("fd-flags", "fd %d (%s): F_GETFL expected %#o got %#o", badfl,
			before[badfl].link, before[badfl].fl, after[badfl].fl);
	else
		wl_ok("fd-flags");
	if (badfd >= 0)
		wl_fail("fd-cloexec", "fd %d (%s): F_GETFD expected %d got %d", badfd,
			before[badfd].link, before[badfd].fd_flags, after[badfd].fd_flags);
	else
		wl_check(after[fd_a].fd_flags == FD_CLOEXEC && after[42].fd_flags == 0 &&
			 after[fd_c].fd_flags == 0, "fd-cloexec",
			 "FD_CLOEXEC: fd_a %d fd 42 %d fd_c %d (want 1 0 0)",
			 after[fd_a].fd_flags, after[42].fd_flags, after[fd_c].fd_flags);
	if (badlink >= 0)
		wl_fail("fd-paths", "fd %d: expected %s got %s", badlink,
			before[badlink].link, after[badlink].link);
	else
		wl_ok("fd-paths");
	if (badino >= 0)
		wl_fail("fd-inodes", "fd %d (%s): a different file (dev/ino) after restore",
			badino, before[badino].link);
	else
		wl_ok("fd-inodes");
}

static void verify(void)
{
	check_table();

	/* A (and 42: the same open file description) */
	check_offset("a-offset", fd_a, 123);
	check_read("a-read", fd_a, 10, S_A, 123);
	check_offset("dup-shared-offset", 42, 133);
	check_read("dup-read", 42, 7, S_A, 133);
	check_offset("dup-shared-offset-back", fd_a, 140);
	wl_check((fcntl(fd_a, F_GETFL) & O_ACCMODE) == O_RDWR &&
		 pwrite(fd_a, "XY", 2, 8000) == 2, "a-rdwr",
		 "fd_a not writable after restore: %s", strerror(errno));

	/* B: still appends */
	char buf[64] = "";
	wl_check(fcntl(fd_b, F_GETFL) & O_APPEND, "b-append-flag", "O_APPEND lost");
	lseek(fd_b, 0, SEEK_SET); /* O_APPEND ignores this for writes */
	ssize_t w = write(fd_b, "after\n", 6);
	int rd = open(path_b, O_RDONLY | O_CLOEXEC);
	ssize_t n = rd >= 0 ? pread(rd, buf, sizeof buf - 1, 0) : -1;
	if (rd >= 0)
		close(rd);
	buf[n > 0 ? n : 0] = 0;
	wl_check(w == 6 && strcmp(buf, "before\nafter\n") == 0, "b-append-write",
		 "file holds \"%s\"", buf);

	/* C (and 100) */
	check_offset("c-offset", fd_c, 5000);
	check_read("c-read", fd_c, 100, S_C, 5000);
	check_offset("dup100-shared-offset", 100, 5100);
	wl_check((fcntl(fd_c, F_GETFL) & O_ACCMODE) == O_RDONLY && write(fd_c, "x", 1) < 0,
		 "c-rdonly", "fd_c is writable");

	/* directory fd: openat still resolves relative to it */
	int in = openat(fd_dir, "inner.txt", O_RDONLY | O_CLOEXEC);
	n = in >= 0 ? read(in, buf, sizeof buf - 1) : -1;
	buf[n > 0 ? n : 0] = 0;
	if (in >= 0)
		close(in);
	wl_check(strcmp(buf, "inner-content\n") == 0, "dirfd-openat",
		 "openat(dirfd, inner.txt): %s", in < 0 ? strerror(errno) : buf);
	wl_check(fcntl(fd_dir, F_GETFL) & O_DIRECTORY, "dirfd-flags", "O_DIRECTORY lost");

	/* devices */
	wl_check(write(fd_null, "abc", 3) == 3 && read(fd_null, buf, 10) == 0,
		 "dev-null", "write/read on /dev/null misbehaved");
	static unsigned char zbuf[PG];
	memset(zbuf, 0xee, sizeof zbuf);
	wl_check(read(fd_zero, zbuf, PG) == PG && wl_nonzero(zbuf, PG) < 0, "dev-zero",
		 "read from /dev/zero is not zeros");
	wl_check(read(fd_rand, buf, 16) == 16, "dev-urandom", "read 16 bytes failed");

	/* the unlinked file */
	struct stat st;
	fstat(fd_gone, &st);
	wl_check(st.st_nlink == 0 && st.st_size == 10000, "unlinked-stat",
		 "nlink %lu size %lld (want 0, 10000)", (unsigned long)st.st_nlink,
		 (long long)st.st_size);
	check_offset("unlinked-offset", fd_gone, 4321);
	check_read("unlinked-read", fd_gone, 200, S_U, 4321);
	static unsigned char gbuf[10000];
	wl_check(pread(fd_gone, gbuf, 10000, 0) == 10000 &&
		 wl_mismatch(gbuf, 10000, S_U, 0) < 0, "unlinked-content",
		 "the 10000 bytes differ");

	/* memfd: fd and mapping are one object */
	check_offset("memfd-offset", fd_mem, PG);
	static unsigned char mbuf[3 * PG];
	wl_check(pread(fd_mem, mbuf, 3 * PG, 0) == 3 * PG &&
		 wl_mismatch(mbuf, 3 * PG, S_M, 0) < 0 &&
		 memcmp(mbuf, memmap, 3 * PG) == 0, "memfd-content",
		 "fd content or mapping differs from the pattern");
	wl_fill(mbuf, PG, S_M2, 0);
	wl_check(pwrite(fd_mem, mbuf, PG, PG) == PG && memcmp(memmap + PG, mbuf, PG) == 0,
		 "memfd-shared", "a write through the fd is not visible in the mapping");
	wl_check(strncmp(after[fd_mem].link, "/memfd:wl-memfd", 15) == 0, "memfd-name",
		 "fd link is %s", after[fd_mem].link);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	for (int fd = 3; fd < MAXFD; fd++)
		if (fcntl(fd, F_GETFD) >= 0) {
			inherited[fd] = 1;
			printf("# ignoring inherited fd %d\n", fd);
		}
	if (inherited[42] || inherited[100]) {
		printf("FAIL setup: fd 42 or 100 inherited from the parent\n");
		return 3;
	}
	wl_install_usr2();
	wl_mkdtemp(wl_tmpbase(argc > 2 ? argv[2] : NULL), "files", dir, sizeof dir);
	snprintf(path_a, sizeof path_a, "%s/a.bin", dir);
	snprintf(path_b, sizeof path_b, "%s/b.log", dir);
	snprintf(path_c, sizeof path_c, "%s/c.bin", dir);
	snprintf(path_inner, sizeof path_inner, "%s/inner.txt", dir);
	snprintf(path_gone, sizeof path_gone, "%s/gone.bin", dir);
	setup();
	snap(before);

	wl_write_pidfile(argv[1]);
	if (wl_sabotage())
		lseek(fd_a, 7, SEEK_SET);
	wl_wait_usr2();
	snap(after);
	verify();
	wl_finish();
}
