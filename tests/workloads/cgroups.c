// cgroups.c: a process and one of its threads in cgroups of their own, in a named cgroup v1
// hierarchy it mounts (name=stasis-test): the process in /stasis-wl/b, the thread in
// /stasis-wl, an empty sibling /stasis-wl/b/empty, /stasis-wl with mode 0750 and
// notify_on_release 1. Dumped with --manage-cgroups; the harness removes the directories
// before the restore. After it the process and the thread are in their cgroups again and the
// directories are back with their mode, property and the empty one.
//
// Usage: cgroups PIDFILE [TMPDIR]   (as root; prints "# mount DIR")
// build: -pthread
#include "wl.h"
#include <pthread.h>
#include <sys/mount.h>
#include <sys/syscall.h>

static char mnt[512];
static volatile int thread_ready, stop;

static void move(const char *cg, const char *file, long id)
{
	char p[700], v[32];
	snprintf(p, sizeof p, "%s%s/%s", mnt, cg, file);
	snprintf(v, sizeof v, "%ld", id);
	int fd = open(p, O_WRONLY);
	if (fd < 0 || write(fd, v, strlen(v)) < 0)
		wl_setup_fail(p);
	close(fd);
}

/* The path of hierarchy name=stasis-test in /proc/.../cgroup, or "". */
static void where(const char *file, char *out, size_t len)
{
	char text[4096] = {0};
	out[0] = 0;
	wl_read_file(file, text, sizeof text);
	char *l = strstr(text, ":name=stasis-test:");
	if (l) {
		l += strlen(":name=stasis-test:");
		size_t n = strcspn(l, "\n");
		snprintf(out, len, "%.*s", (int)n, l);
	}
}

static void *worker(void *arg)
{
	(void)arg;
	move("/stasis-wl", "tasks", syscall(SYS_gettid));
	thread_ready = 1;
	while (!stop)
		wl_sleep(0.01);
	char here[256];
	where("/proc/thread-self/cgroup", here, sizeof here);
	wl_check(strcmp(here, "/stasis-wl") == 0, "thread-cgroup", "thread in %s", here);
	return NULL;
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
	snprintf(mnt, sizeof mnt, "%s/wl-cg-%d", tmp, (int)getpid());
	if (mkdir(mnt, 0700) || mount("none", mnt, "cgroup", 0, "none,name=stasis-test"))
		wl_setup_fail("mount name=stasis-test");
	char p[700];
	snprintf(p, sizeof p, "%s/stasis-wl", mnt);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/stasis-wl/b", mnt);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/stasis-wl/b/empty", mnt);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/stasis-wl", mnt);
	if (chmod(p, 0750))
		wl_setup_fail("chmod");
	snprintf(p, sizeof p, "%s/stasis-wl/notify_on_release", mnt);
	int fd = open(p, O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1)
		wl_setup_fail("notify_on_release");
	close(fd);
	move("/stasis-wl/b", "cgroup.procs", getpid());
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL))
		wl_setup_fail("pthread_create");
	while (!thread_ready)
		wl_sleep(0.001);
	printf("# mount %s\n", mnt);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	char here[256];
	where("/proc/self/cgroup", here, sizeof here);
	wl_check(strcmp(here, "/stasis-wl/b") == 0, "process-cgroup", "process in %s", here);
	stop = 1;
	pthread_join(th, NULL);
	struct stat st;
	snprintf(p, sizeof p, "%s/stasis-wl", mnt);
	wl_check(stat(p, &st) == 0 && (st.st_mode & 07777) == 0750, "dir-mode", "mode %o", st.st_mode & 07777);
	char v[8] = {0};
	snprintf(p, sizeof p, "%s/stasis-wl/notify_on_release", mnt);
	wl_read_file(p, v, sizeof v);
	wl_check(v[0] == '1', "property", "notify_on_release %s", v);
	snprintf(p, sizeof p, "%s/stasis-wl/b/empty", mnt);
	wl_check(stat(p, &st) == 0 && S_ISDIR(st.st_mode), "empty-sibling", "missing");
	/* leave nothing behind: back to the root, remove the cgroups, unmount */
	move("", "cgroup.procs", getpid());
	snprintf(p, sizeof p, "%s/stasis-wl/b/empty", mnt);
	rmdir(p);
	snprintf(p, sizeof p, "%s/stasis-wl/b", mnt);
	rmdir(p);
	snprintf(p, sizeof p, "%s/stasis-wl", mnt);
	rmdir(p);
	umount(mnt);
	rmdir(mnt);
	wl_finish();
}
