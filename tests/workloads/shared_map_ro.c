// shared_map_ro.c: a MAP_SHARED mapping of a file opened O_RDWR but mapped PROT_READ only,
// the fd closed (zdtm mprotect on shared file mappings). The mapping may become writable
// (VmFlags mw): mprotect(PROT_READ|PROT_WRITE) works. A restorer that maps it again from the
// file opened read-only (it looks read-only) makes that mprotect fail with EACCES.
// build:
//
// Usage: shared_map_ro PIDFILE [TMPDIR]
// Two pages of a pattern in a temp file. After SIGUSR2: the mapping is still `r--s` with
// `mw` in VmFlags, holds the file's bytes, mprotect to read-write succeeds, and bytes written
// through the mapping (msync) are read back from the file through a new fd.
#include "wl.h"
#include <sys/mman.h>

#define LEN (2 * 4096)

static char smaps[1 << 20];

/* The permissions and VmFlags of the VMA holding `addr`. */
static int vma_of(const void *addr, char *perms, char *flags, size_t flen)
{
	if (wl_read_file("/proc/self/smaps", smaps, sizeof smaps) <= 0)
		return 0;
	unsigned long a = (unsigned long)addr;
	int inside = 0;
	for (char *l = strtok(smaps, "\n"); l; l = strtok(NULL, "\n")) {
		unsigned long s, e;
		char p[8];
		if (sscanf(l, "%lx-%lx %4s ", &s, &e, p) == 3 && strchr(l, '-') < strchr(l, ' ')) {
			inside = s <= a && a < e;
			if (inside)
				snprintf(perms, 8, "%s", p);
			continue;
		}
		if (inside && !strncmp(l, "VmFlags:", 8)) {
			snprintf(flags, flen, "%s ", l + 8);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	char dir[512], path[600];
	wl_mkdtemp(wl_tmpbase(argc > 2 ? argv[2] : NULL), "shmap", dir, sizeof dir);
	snprintf(path, sizeof path, "%s/data", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		wl_setup_fail("open");
	wl_tmp_register(path);
	static char buf[LEN];
	wl_fill(buf, LEN, 61, 0);
	if (write(fd, buf, LEN) != LEN)
		wl_setup_fail("write");
	char *m = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		wl_setup_fail("mmap");
	close(fd);
	char perms[8] = "", flags[256] = "";
	if (!vma_of(m, perms, flags, sizeof flags) || strcmp(perms, "r--s") || !strstr(flags, " mw ")) {
		errno = EINVAL;
		wl_setup_fail("the mapping is not r--s with mw");
	}
	printf("# %s at %p: %s VmFlags%s\n", path, (void *)m, perms, flags);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	perms[0] = flags[0] = 0;
	vma_of(m, perms, flags, sizeof flags);
	wl_check(!strcmp(perms, "r--s"), "still-read-only", "perms %s", perms);
	wl_check(strstr(flags, " mw ") != NULL, "may-write", "VmFlags%s", flags);
	wl_check_pat("content", m, LEN, 61, 0);
	int r = mprotect(m, LEN, PROT_READ | PROT_WRITE);
	if (!wl_check(r == 0, "mprotect-rw", "mprotect: %s", strerror(errno)))
		wl_finish();
	wl_fill(m + 100, 300, 62, 0);
	wl_fill(m + 4096 + 7, 50, 63, 0);
	int ok = msync(m, LEN, MS_SYNC) == 0;
	int rd = open(path, O_RDONLY);
	static char back[LEN];
	ok = ok && rd >= 0 && pread(rd, back, LEN, 0) == LEN;
	ok = ok && wl_mismatch(back + 100, 300, 62, 0) < 0 && wl_mismatch(back + 4096 + 7, 50, 63, 0) < 0 &&
	     wl_mismatch(back, 100, 61, 0) < 0;
	wl_check(ok, "writes-reach-file", "the file does not hold the bytes written to the mapping");
	wl_finish();
}
