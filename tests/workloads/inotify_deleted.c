// inotify_deleted.c: an inotify watch on a file that was deleted while this process holds it
// open, and a watch on its directory. After restore: no event the restore caused is queued,
// closing the file (written) reports IN_CLOSE_WRITE on the file's own watch (the restore
// watched the very file the process holds), and creating a file in the directory reports
// IN_CREATE on the directory's watch.
// build: -D_GNU_SOURCE
//
// Usage: inotify_deleted PIDFILE [TMPDIR]
#include "wl.h"
#include <sys/inotify.h>

/* Read what is queued; returns the OR of the masks of events on watch `wd`. */
static unsigned masks_of(int in, int wd, int *count)
{
	char buf[8192] __attribute__((aligned(8)));
	unsigned m = 0;
	ssize_t n;
	*count = 0;
	while ((n = read(in, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			if (e->wd == wd)
				m |= e->mask;
			(*count)++;
			p += sizeof *e + e->len;
		}
	}
	return m;
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
	char dir[512], file[600], other[600];
	snprintf(dir, sizeof dir, "%s/wl-inotify-%d", tmp, (int)getpid());
	snprintf(file, sizeof file, "%s/watched", dir);
	snprintf(other, sizeof other, "%s/made-after", dir);
	if (mkdir(dir, 0755))
		wl_setup_fail("mkdir");
	wl_tmp_register(dir);
	wl_tmp_register(other);
	int in = inotify_init1(IN_NONBLOCK);
	int fd = open(file, O_RDWR | O_CREAT, 0644);
	if (in < 0 || fd < 0)
		wl_setup_fail("inotify_init1, open");
	unsigned mask = IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_DELETE_SELF;
	int wdir = inotify_add_watch(in, dir, mask);
	int wfile = inotify_add_watch(in, file, mask);
	if (wdir < 0 || wfile < 0 || unlink(file))
		wl_setup_fail("inotify_add_watch, unlink");
	int n;
	masks_of(in, -1, &n);
	if (wl_sabotage())
		inotify_rm_watch(in, wfile);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	masks_of(in, -1, &n);
	wl_check(n == 0, "no-restore-events", "%d events queued after restore", n);
	if (write(fd, "x", 1) != 1)
		wl_fail("write", "%s", strerror(errno));
	close(fd);
	unsigned m = masks_of(in, wfile, &n);
	wl_check(m & IN_CLOSE_WRITE, "deleted-file-watch",
		 "events on wd %d: mask %#x, want IN_CLOSE_WRITE", wfile, m);
	int o = open(other, O_WRONLY | O_CREAT, 0644);
	close(o);
	m = masks_of(in, wdir, &n);
	wl_check(m & IN_CREATE, "directory-watch", "events on wd %d: mask %#x, want IN_CREATE",
		 wdir, m);
	wl_finish();
}
