// fs_context.c: where a process stands in the file system and what it holds by path only: a
// child chrooted into a directory (after restore its root is still that directory: a file
// there opens by "/name"), an O_PATH fd of a symlink and one of a unix socket file, and an fd
// of the process's own network namespace (/proc/self/ns/net).
//
// Usage: fs_context PIDFILE [TMPDIR]   (as root: chroot)
#include "wl.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	char dir[512], p[600];
	snprintf(dir, sizeof dir, "%s/wl-fsctx-%d", tmp, (int)getpid());
	if (mkdir(dir, 0755))
		wl_setup_fail("mkdir");
	wl_tmp_register(dir);
	snprintf(p, sizeof p, "%s/inside", dir);
	int f = open(p, O_WRONLY | O_CREAT, 0644);
	if (f < 0 || write(f, "jailed", 6) != 6)
		wl_setup_fail("file inside");
	close(f);
	wl_tmp_register(p);

	int ready[2], go[2], res[2];
	if (pipe(ready) || pipe(go) || pipe(res))
		wl_setup_fail("pipes");
	pid_t kid = fork();
	if (kid == 0) {
		char c = 0;
		if (chroot(dir) || chdir("/"))
			_exit(3);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		char buf[8] = {0};
		int fd = open("/inside", O_RDONLY);
		c = fd >= 0 && read(fd, buf, 6) == 6 && strcmp(buf, "jailed") == 0 && access(p, F_OK) != 0;
		if (write(res[1], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	char c;
	if (read(ready[0], &c, 1) != 1)
		wl_setup_fail("the chrooted child");

	snprintf(p, sizeof p, "%s/link", dir);
	if (symlink("/the/target", p))
		wl_setup_fail("symlink");
	wl_tmp_register(p);
	int lnk = open(p, O_PATH | O_NOFOLLOW);

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(dir) + 6 > sizeof sa.sun_path)
		wl_setup_fail("TMPDIR too long for a socket path");
	memcpy(sa.sun_path, dir, strlen(dir));
	memcpy(sa.sun_path + strlen(dir), "/sock", 6);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa))
		wl_setup_fail("bind");
	wl_tmp_register(sa.sun_path);
	int sockfile = open(sa.sun_path, O_PATH);
	close(s);

	int ns = open("/proc/self/ns/net", O_RDONLY);
	if (lnk < 0 || sockfile < 0 || ns < 0)
		wl_setup_fail("O_PATH fds, ns fd");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	c = 0;
	int got = write(go[1], "g", 1) == 1 && read(res[0], &c, 1) == 1;
	int st = 0;
	waitpid(kid, &st, 0);
	wl_check(got && c == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "chroot",
		 "the child does not see its chroot (result %d, status %x)", c, st);
	struct stat sb;
	char target[64] = {0};
	wl_check(fstat(lnk, &sb) == 0 && S_ISLNK(sb.st_mode) && readlinkat(lnk, "", target, sizeof target - 1) > 0 &&
			 strcmp(target, "/the/target") == 0,
		 "symlink-opath", "mode %o target %s", sb.st_mode, target);
	wl_check(fstat(sockfile, &sb) == 0 && S_ISSOCK(sb.st_mode) && (fcntl(sockfile, F_GETFL) & O_PATH), "socket-opath",
		 "mode %o", sb.st_mode);
	struct stat a, b;
	int fresh = open("/proc/self/ns/net", O_RDONLY);
	wl_check(fstat(ns, &a) == 0 && fresh >= 0 && fstat(fresh, &b) == 0 && a.st_ino == b.st_ino, "netns-fd",
		 "inode %lu, now %lu", (unsigned long)a.st_ino, (unsigned long)b.st_ino);
	wl_finish();
}
