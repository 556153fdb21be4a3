// memfd_descriptions.c: one memfd reached through several open file descriptions (as
// zdtm's memfd tests do): the memfd_create fd `m` (mode changed to 0640, offset 5), a
// description reopened through /proc/self/fd/m with O_RDWR|O_APPEND, a read-only one at
// offset 2, and one that a child reopened for itself (it closed what it inherited). A
// restorer that makes a memfd per description splits them into separate files (the writes of
// one no longer reach the others) and loses the mode and O_APPEND.
// build:
//
// Usage: memfd_descriptions PIDFILE
// After SIGUSR2: mode 0640, every description (the child's too) on one inode with the same
// name, access modes, offsets and O_APPEND as before, a write through the O_APPEND one lands
// at the end, and writes through any description are read through the others, in both
// processes.
#include "wl.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define NAME "wl-memfd-desc"

static int to_kid[2], from_kid[2];

static int reopen(int fd, int flags)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	return open(p, flags);
}

static int name_ok(int fd)
{
	char p[64], link[256] = {0};
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	return readlink(p, link, sizeof link - 1) > 0 && !strcmp(link, "/memfd:" NAME " (deleted)");
}

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		got += r;
	}
	return 1;
}

/* The child: its own description `c` of the memfd; commands on to_kid, answers on from_kid. */
static void kid_loop(int c)
{
	for (;;) {
		char cmd;
		if (!read_full(to_kid[0], &cmd, 1))
			_exit(8);
		char out[32] = {0};
		struct stat st;
		switch (cmd) {
		case 'r': /* 8 bytes at offset 200 */
			if (pread(c, out, 8, 200) != 8)
				memcpy(out, "read-err", 8);
			break;
		case 'w': /* 10 bytes at offset 300 */
			memcpy(out, pwrite(c, "from-child", 10, 300) == 10 ? "wrote   " : "writeerr", 8);
			break;
		case 'i': /* inode, name, access mode */
			fstat(c, &st);
			snprintf(out, 9, "%08lx", (unsigned long)st.st_ino & 0xffffffff);
			if (!name_ok(c) || (fcntl(c, F_GETFL) & O_ACCMODE) != O_RDWR)
				memcpy(out, "bad-c-fd", 8);
			break;
		case 'q':
			_exit(0);
		}
		if (write(from_kid[1], out, 8) != 8)
			_exit(9);
	}
}

static void ask(char cmd, char *out)
{
	memset(out, 0, 9);
	if (write(to_kid[1], &cmd, 1) != 1 || !read_full(from_kid[0], out, 8))
		memcpy(out, "no-reply", 8);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	if (pipe(to_kid) || pipe(from_kid))
		wl_setup_fail("pipe");
	int m = memfd_create(NAME, 0);
	if (m < 0 || write(m, "base-", 5) != 5 || fchmod(m, 0640))
		wl_setup_fail("memfd");
	int a = reopen(m, O_RDWR | O_APPEND);
	int r = reopen(m, O_RDONLY);
	if (a < 0 || r < 0 || lseek(r, 2, SEEK_SET) != 2)
		wl_setup_fail("reopen the memfd");
	fflush(stdout);
	pid_t k = fork();
	if (k < 0)
		wl_setup_fail("fork");
	if (k == 0) {
		int c = reopen(m, O_RDWR);
		if (c < 0)
			_exit(7);
		close(m);
		close(a);
		close(r);
		kid_loop(c);
	}
	char reply[9];
	ask('i', reply);
	struct stat sm;
	fstat(m, &sm);
	char ino[9];
	snprintf(ino, sizeof ino, "%08lx", (unsigned long)sm.st_ino & 0xffffffff);
	if (strcmp(reply, ino)) {
		errno = EINVAL;
		wl_setup_fail("the child's description is not on the memfd");
	}
	printf("# memfd %d (ino %lu), O_APPEND %d, read-only %d, child %d\n", m,
	       (unsigned long)sm.st_ino, a, r, (int)k);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	struct stat s1, s2, s3;
	fstat(m, &s1);
	fstat(a, &s2);
	fstat(r, &s3);
	wl_check((s1.st_mode & 07777) == 0640, "mode", "mode %o", s1.st_mode & 07777);
	wl_check(s1.st_ino == s2.st_ino && s1.st_ino == s3.st_ino && s1.st_dev == s2.st_dev &&
			 s1.st_dev == s3.st_dev,
		 "one-inode", "inodes %lu %lu %lu", (unsigned long)s1.st_ino, (unsigned long)s2.st_ino,
		 (unsigned long)s3.st_ino);
	wl_check(name_ok(m) && name_ok(a) && name_ok(r), "names", "a description lost the memfd's name");
	int fm = fcntl(m, F_GETFL), fa = fcntl(a, F_GETFL), fr = fcntl(r, F_GETFL);
	wl_check((fm & O_ACCMODE) == O_RDWR && !(fm & O_APPEND) && (fa & O_ACCMODE) == O_RDWR &&
			 (fr & O_ACCMODE) == O_RDONLY,
		 "access-modes", "flags %#o %#o %#o", fm, fa, fr);
	wl_check(fa & O_APPEND, "append-flag", "flags of the O_APPEND description %#o", fa);
	off_t om = lseek(m, 0, SEEK_CUR), or_ = lseek(r, 0, SEEK_CUR);
	wl_check(om == 5 && or_ == 2, "offsets", "memfd at %ld, read-only at %ld (want 5, 2)", (long)om,
		 (long)or_);
	char buf[32] = {0};
	wl_check(pwrite(m, "hello", 5, 100) == 5 && pread(r, buf, 5, 100) == 5 && !memcmp(buf, "hello", 5),
		 "shared-writes", "read '%s' through the read-only description", buf);
	off_t end = s1.st_size > 105 ? s1.st_size : 105;
	memset(buf, 0, sizeof buf);
	int ok = write(a, "+tail", 5) == 5 && lseek(a, 0, SEEK_CUR) == end + 5 &&
		 pread(m, buf, 5, end) == 5 && !memcmp(buf, "+tail", 5) && lseek(m, 0, SEEK_CUR) == 5;
	wl_check(ok, "append-writes-at-end", "size %ld, O_APPEND offset %ld, read at %ld '%s'", (long)end,
		 (long)lseek(a, 0, SEEK_CUR), (long)end, buf);

	char reply2[9];
	ask('i', reply2);
	snprintf(ino, sizeof ino, "%08lx", (unsigned long)s1.st_ino & 0xffffffff);
	wl_check(!strcmp(reply2, ino), "child-one-inode", "child says %s, memfd inode %s", reply2, ino);
	pwrite(m, "to-child", 8, 200);
	ask('r', reply2);
	wl_check(!strcmp(reply2, "to-child"), "child-sees-parent-write", "child read '%s'", reply2);
	ask('w', reply2);
	memset(buf, 0, sizeof buf);
	wl_check(!strcmp(reply2, "wrote   ") && pread(r, buf, 10, 300) == 10 && !strcmp(buf, "from-child"),
		 "parent-sees-child-write", "child says '%s', parent read '%s'", reply2, buf);
	if (write(to_kid[1], "q", 1) != 1)
		wl_fail("child-exit", "write");
	int st = 0;
	pid_t w = waitpid(k, &st, 0);
	wl_check(w == k && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child-exit", "status %#x", st);
	wl_finish();
}
