// ghosts.c: files other than regular ones that were unlinked while open, and deleted regular
// files in odd shapes: a FIFO with bytes in it, a character device node, a directory under a
// removed directory held by an fd, the working directory removed (the same directory as
// another fd), a symlink held with O_PATH, an O_TMPFILE file, and one deleted file opened
// twice (the two fds must stay one file). After restore each is the same kind of object,
// unlinked, with the same contents, device number, link target and sharing.
//
// Usage: ghosts PIDFILE [TMPDIR]   (as root: mknod)
#include "wl.h"
#include <sys/sysmacros.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	char base[512], p[600], outer[600];
	snprintf(base, sizeof base, "%s/wl-ghosts-%d", tmp, (int)getpid());
	if (mkdir(base, 0755))
		wl_setup_fail("mkdir base");
	wl_tmp_register(base);
	int keep = open(".", O_RDONLY | O_DIRECTORY);

	snprintf(p, sizeof p, "%s/fifo", base);
	if (mkfifo(p, 0600))
		wl_setup_fail("mkfifo");
	int fifo = open(p, O_RDWR);
	if (fifo < 0 || write(fifo, "in the fifo", 11) != 11 || unlink(p))
		wl_setup_fail("fifo");

	snprintf(p, sizeof p, "%s/null", base);
	if (mknod(p, S_IFCHR | 0640, makedev(1, 3)))
		wl_setup_fail("mknod");
	int dev = open(p, O_WRONLY);
	if (dev < 0 || unlink(p))
		wl_setup_fail("device");

	snprintf(outer, sizeof outer, "%s/outer", base);
	snprintf(p, sizeof p, "%s/outer/inner", base);
	if (mkdir(outer, 0700) || mkdir(p, 0700))
		wl_setup_fail("mkdir");
	int dir = open(p, O_RDONLY | O_DIRECTORY);
	if (dir < 0 || rmdir(p) || rmdir(outer))
		wl_setup_fail("removed dir");

	snprintf(p, sizeof p, "%s/cwd", base);
	if (mkdir(p, 0700) || chdir(p))
		wl_setup_fail("cwd");
	int cwdfd = open(".", O_RDONLY | O_DIRECTORY);
	if (cwdfd < 0 || rmdir(p))
		wl_setup_fail("removed cwd");

	snprintf(p, sizeof p, "%s/link", base);
	if (symlink("/the/target", p))
		wl_setup_fail("symlink");
	int lnk = open(p, O_PATH | O_NOFOLLOW);
	if (lnk < 0 || unlink(p))
		wl_setup_fail("symlink O_PATH");

	int tf = open(base, O_TMPFILE | O_RDWR, 0600);
	if (tf < 0 || write(tf, "tmpfile", 7) != 7)
		wl_setup_fail("O_TMPFILE");

	snprintf(p, sizeof p, "%s/twice", base);
	int t1 = open(p, O_RDWR | O_CREAT, 0600);
	int t2 = open(p, O_RDONLY);
	if (t1 < 0 || t2 < 0 || write(t1, "one", 3) != 3 || unlink(p))
		wl_setup_fail("twice");

	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	struct stat st;
	char buf[32] = {0};
	wl_check(fstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_nlink == 0 && read(fifo, buf, 11) == 11 &&
			 strcmp(buf, "in the fifo") == 0,
		 "fifo", "nlink %lu read %s", (unsigned long)st.st_nlink, buf);
	wl_check(fstat(dev, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) && st.st_nlink == 0 &&
			 (st.st_mode & 07777) == 0640 && write(dev, "x", 1) == 1,
		 "device", "mode %o rdev %lx nlink %lu", st.st_mode, (unsigned long)st.st_rdev,
		 (unsigned long)st.st_nlink);
	wl_check(fstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_nlink == 0, "removed-dir", "mode %o nlink %lu",
		 st.st_mode, (unsigned long)st.st_nlink);
	struct stat c1, c2;
	wl_check(stat(".", &c1) == 0 && fstat(cwdfd, &c2) == 0 && c1.st_ino == c2.st_ino && c1.st_dev == c2.st_dev &&
			 c1.st_nlink == 0,
		 "removed-cwd", "cwd ino %lu fd ino %lu nlink %lu", (unsigned long)c1.st_ino, (unsigned long)c2.st_ino,
		 (unsigned long)c1.st_nlink);
	char target[64] = {0};
	wl_check(fstat(lnk, &st) == 0 && S_ISLNK(st.st_mode) && readlinkat(lnk, "", target, sizeof target - 1) > 0 &&
			 strcmp(target, "/the/target") == 0,
		 "symlink", "mode %o target %s", st.st_mode, target);
	memset(buf, 0, sizeof buf);
	wl_check(pread(tf, buf, 7, 0) == 7 && strcmp(buf, "tmpfile") == 0 && write(tf, "!", 1) == 1, "tmpfile",
		 "read %s", buf);
	struct stat s1, s2;
	memset(buf, 0, sizeof buf);
	wl_check(fstat(t1, &s1) == 0 && fstat(t2, &s2) == 0 && s1.st_ino == s2.st_ino && write(t1, "+two", 4) == 4 &&
			 pread(t2, buf, 7, 0) == 7 && strcmp(buf, "one+two") == 0,
		 "one-file-twice", "inodes %lu %lu read %s", (unsigned long)s1.st_ino, (unsigned long)s2.st_ino, buf);
	if (fchdir(keep))
		wl_setup_fail("fchdir back");
	wl_finish();
}
