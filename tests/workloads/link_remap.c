// link_remap.c: a file unlinked from the path it was opened by but still linked under
// another name. Dumped with --link-remap, restore must open that very inode (not a copy):
// writes through the fd show in the other name, and no link of stasis's is left behind.
//
// Usage: link_remap PIDFILE [TMPDIR]
#include "wl.h"
#include <dirent.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	char dir[512], a[600], b[600];
	snprintf(dir, sizeof dir, "%s/wl-remap-%d", tmp, (int)getpid());
	snprintf(a, sizeof a, "%s/a", dir);
	snprintf(b, sizeof b, "%s/b", dir);
	if (mkdir(dir, 0700))
		wl_setup_fail("mkdir");
	wl_tmp_register(dir);
	int fd = open(a, O_RDWR | O_CREAT, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1 || link(a, b) || unlink(a))
		wl_setup_fail("file, link, unlink");
	wl_tmp_register(b);
	struct stat before;
	if (fstat(fd, &before))
		wl_setup_fail("fstat");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	struct stat now, other;
	wl_check(fstat(fd, &now) == 0 && stat(b, &other) == 0 && now.st_ino == other.st_ino, "same-inode",
		 "fd inode %lu, %s inode %lu", (unsigned long)now.st_ino, b, (unsigned long)other.st_ino);
	char got[4] = {0};
	int r = open(b, O_RDONLY);
	wl_check(pwrite(fd, "y", 1, 1) == 1 && r >= 0 && pread(r, got, 2, 0) == 2 && strcmp(got, "xy") == 0,
		 "writes-show-in-the-other-name", "read %s", got);
	int n = 0;
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	wl_check(n == 1, "no-link-left", "%d names in %s", n, dir);
	wl_finish();
}
