// fanotify.c: a fanotify group (FAN_CLASS_NOTIF | FAN_NONBLOCK, event files O_RDONLY) with an
// inode mark on a file (FAN_OPEN | FAN_CLOSE_WRITE) and a mount mark with only an ignored
// mask that survives modification. After restore: the group's fdinfo lines are as before
// (flags, marks, masks, the same inode), no event the restore caused is queued, and opening
// the marked file reports FAN_OPEN from this process.
// build: -D_GNU_SOURCE
//
// Usage: fanotify PIDFILE [TMPDIR]   (as root)
#include "wl.h"
#include <sys/fanotify.h>

/* The "fanotify" lines of fd's fdinfo, concatenated. */
static void fan_lines(int fd, char *out, size_t len)
{
	char path[64], text[8192] = {0};
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	wl_read_file(path, text, sizeof text);
	out[0] = 0;
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n"))
		if (!strncmp(l, "fanotify", 8)) {
			strncat(out, l, len - strlen(out) - 2);
			strcat(out, "\n");
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
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	char file[512];
	snprintf(file, sizeof file, "%s/wl-fanotify-%d", tmp, (int)getpid());
	int f = open(file, O_RDWR | O_CREAT, 0644);
	if (f < 0)
		wl_setup_fail("open");
	close(f);
	wl_tmp_register(file);
	int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
	if (fan < 0)
		wl_setup_fail("fanotify_init");
	if (fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN | FAN_CLOSE_WRITE, AT_FDCWD, file) ||
	    fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_IGNORED_MASK |
				       FAN_MARK_IGNORED_SURV_MODIFY,
			  FAN_MODIFY, AT_FDCWD, tmp))
		wl_setup_fail("fanotify_mark");
	static char before[4096], after[4096];
	fan_lines(fan, before, sizeof before);
	if (wl_sabotage())
		fanotify_mark(fan, FAN_MARK_REMOVE, FAN_CLOSE_WRITE, AT_FDCWD, file);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	fan_lines(fan, after, sizeof after);
	wl_check(!strcmp(before, after), "fdinfo", "before:\n%safter:\n%s", before, after);
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n = read(fan, buf, sizeof buf);
	wl_check(n < 0 && errno == EAGAIN, "no-restore-events", "read gave %zd (%s)", n,
		 n < 0 ? strerror(errno) : "events queued");
	int o = open(file, O_RDONLY);
	close(o);
	n = read(fan, buf, sizeof buf);
	struct fanotify_event_metadata *e = (struct fanotify_event_metadata *)buf;
	int ok = n >= (ssize_t)sizeof *e && (e->mask & FAN_OPEN) && e->pid == getpid();
	if (n >= (ssize_t)sizeof *e && e->fd >= 0)
		close(e->fd);
	wl_check(ok, "mark", "read gave %zd, mask %#llx, pid %d", n,
		 n > 0 ? (unsigned long long)e->mask : 0ULL, n > 0 ? e->pid : 0);
	wl_finish();
}
