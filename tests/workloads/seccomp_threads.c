// seccomp_threads.c: seccomp filters are per thread. Thread `bare` is created before any
// filter; then main sets no_new_privs and installs F0 (uname -> errno 70) for itself only;
// threads `t1` and `t2` are created after (they inherit F0) and add F1 (getppid -> errno 71)
// and F2 (getpgid -> errno 72) each for itself. After SIGUSR2 every thread checks its
// syscalls and its Seccomp mode (/proc/self/task/TID/status): bare none, main F0, t1 F0+F1,
// t2 F0+F2. Sabotage: t2 adds F1 too -> `t2-filters`.
// build: -pthread
//
// Usage: seccomp_threads PIDFILE
#include "wl.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

static int filter(long nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = f };
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

// The errno each probe fails with (0: it works), and the thread's Seccomp mode.
struct seen {
	int uname, getppid, getpgid, mode;
};

static int errno_of(long r)
{
	return r < 0 ? errno : 0;
}

static void probe(struct seen *s)
{
	struct utsname u;
	char path[64], buf[4096];
	s->uname = errno_of(syscall(SYS_uname, &u));
	s->getppid = errno_of(syscall(SYS_getppid));
	s->getpgid = errno_of(syscall(SYS_getpgid, 0));
	snprintf(path, sizeof path, "/proc/self/task/%ld/status", (long)syscall(SYS_gettid));
	char *m = wl_read_file(path, buf, sizeof buf) > 0 ? strstr(buf, "\nSeccomp:") : NULL;
	s->mode = m ? atoi(m + 9) : -1;
}

static volatile int ready, go;
static struct seen seen[4]; // main, bare, t1, t2

static void *thread(void *arg)
{
	long i = (long)arg;
	if (i == 2 && filter(SYS_getppid, 71))
		return (void *)1;
	if (i == 3 && (filter(SYS_getpgid, 72) || (wl_sabotage() && filter(SYS_getppid, 71))))
		return (void *)1;
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	while (!go) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	probe(&seen[i]);
	return NULL;
}

static void expect(const char *name, struct seen s, struct seen want)
{
	wl_check(s.uname == want.uname && s.getppid == want.getppid && s.getpgid == want.getpgid &&
			 s.mode == want.mode,
		 name, "uname/getppid/getpgid errno %d/%d/%d mode %d, expected %d/%d/%d mode %d",
		 s.uname, s.getppid, s.getpgid, s.mode, want.uname, want.getppid, want.getpgid,
		 want.mode);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	pthread_t t[4];
	if (pthread_create(&t[1], NULL, thread, (void *)1))
		wl_setup_fail("pthread_create");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || filter(SYS_uname, 70))
		wl_setup_fail("seccomp F0");
	for (long i = 2; i < 4; i++)
		if (pthread_create(&t[i], NULL, thread, (void *)i))
			wl_setup_fail("pthread_create");
	while (ready < 3) {
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	go = 1;
	probe(&seen[0]);
	for (int i = 1; i < 4; i++) {
		void *r;
		if (pthread_join(t[i], &r) || r)
			wl_fail("join", "thread %d failed", i);
	}
	expect("main-filters", seen[0], (struct seen){ 70, 0, 0, 2 });
	expect("bare-filters", seen[1], (struct seen){ 0, 0, 0, 0 });
	expect("t1-filters", seen[2], (struct seen){ 70, 71, 0, 2 });
	expect("t2-filters", seen[3], (struct seen){ 70, 0, 72, 2 });
	wl_finish();
}
