// ghost.c: deleted files ("ghosts") that must come back as they were: a sparse one (4 KiB of
// data, a 64 MiB hole, 4 KiB of data) held by a write-only fd, with its own owner, mode and
// modification time; and one held only by an O_PATH fd. After restore: same size, the hole is
// still a hole (few blocks allocated, SEEK_DATA/SEEK_HOLE find the same runs), same data,
// owner, mode, times, and the write-only fd still writes at its offset.
//
// Usage: ghost PIDFILE [TMPDIR]
#include "wl.h"

#define HOLE (64LL << 20)
#define CHUNK 4096

static void fill(char *buf, char c)
{
	for (int i = 0; i < CHUNK; i++)
		buf[i] = (char)(c + i % 13);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	char sparse[512], opath[512], a[CHUNK], b[CHUNK], got[CHUNK];
	snprintf(sparse, sizeof sparse, "%s/wl-ghost-sparse-%d", tmp, (int)getpid());
	snprintf(opath, sizeof opath, "%s/wl-ghost-opath-%d", tmp, (int)getpid());
	fill(a, 'a');
	fill(b, 'b');
	int rw = open(sparse, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (rw < 0 || pwrite(rw, a, CHUNK, 0) != CHUNK || pwrite(rw, b, CHUNK, CHUNK + HOLE) != CHUNK)
		wl_setup_fail("the sparse file");
	if (fchown(rw, 1234, 4321) || fchmod(rw, 0640))
		wl_setup_fail("owner and mode");
	struct timespec times[2] = {{1000000000, 0}, {1234567890, 123456789}};
	if (futimens(rw, times))
		wl_setup_fail("times");
	int wo = open(sparse, O_WRONLY);
	if (wo < 0 || lseek(wo, 100, SEEK_SET) != 100)
		wl_setup_fail("the write-only fd");
	close(rw);
	int op0 = open(opath, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (op0 < 0 || write(op0, "opath", 5) != 5)
		wl_setup_fail("the O_PATH file");
	close(op0);
	int op = open(opath, O_PATH);
	if (op < 0 || unlink(sparse) || unlink(opath))
		wl_setup_fail("O_PATH, unlink");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	char link[600];
	snprintf(link, sizeof link, "/proc/self/fd/%d", wo);
	int r = open(link, O_RDONLY);
	struct stat st;
	if (r < 0 || fstat(r, &st))
		wl_setup_fail("reopening the sparse file");
	wl_check(st.st_size == 2 * CHUNK + HOLE, "size", "%lld", (long long)st.st_size);
	wl_check(st.st_blocks * 512 < 1 << 20, "hole-kept", "%lld bytes allocated", (long long)st.st_blocks * 512);
	wl_check(lseek(r, 0, SEEK_HOLE) == CHUNK && lseek(r, CHUNK, SEEK_DATA) == CHUNK + HOLE, "extents",
		 "hole at %lld, data at %lld", (long long)lseek(r, 0, SEEK_HOLE), (long long)lseek(r, CHUNK, SEEK_DATA));
	wl_check(pread(r, got, CHUNK, 0) == CHUNK && memcmp(got, a, CHUNK) == 0, "data-first", "differs");
	wl_check(pread(r, got, CHUNK, CHUNK + HOLE) == CHUNK && memcmp(got, b, CHUNK) == 0, "data-last", "differs");
	wl_check(st.st_uid == 1234 && st.st_gid == 4321, "owner", "%d:%d", (int)st.st_uid, (int)st.st_gid);
	wl_check((st.st_mode & 07777) == 0640, "mode", "%o", st.st_mode & 07777);
	wl_check(st.st_mtim.tv_sec == 1234567890 && st.st_mtim.tv_nsec == 123456789, "mtime", "%lld.%09ld",
		 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	int fl = fcntl(wo, F_GETFL);
	wl_check((fl & O_ACCMODE) == O_WRONLY && lseek(wo, 0, SEEK_CUR) == 100, "write-only-fd", "flags %o offset %lld",
		 fl, (long long)lseek(wo, 0, SEEK_CUR));
	wl_check(write(wo, "X", 1) == 1 && pread(r, got, 1, 100) == 1 && got[0] == 'X', "write-only-fd-writes", "no");
	snprintf(link, sizeof link, "/proc/self/fd/%d", op);
	int o = open(link, O_RDONLY);
	char five[6] = {0};
	fl = fcntl(op, F_GETFL);
	wl_check(o >= 0 && read(o, five, 5) == 5 && strcmp(five, "opath") == 0 && (fl & O_PATH), "opath-fd",
		 "flags %o read %s", fl, five);
	wl_finish();
}
