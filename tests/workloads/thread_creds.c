// thread_creds.c: a thread with credentials of its own. The kernel keeps credentials per
// thread; glibc's setresuid() changes all threads together, but the raw syscall changes only
// the calling one (programs that drop privileges in a worker thread do this). Restore must
// give each thread its own credentials back, not the process's.
// build: -pthread
//
// Needs root. Main stays root (uid 0, gid 0). Thread "worker" drops to gid 1234/uid 4321
// (real, effective, saved) with raw setresgid/setresuid, then waits on a pipe. After restore
// and SIGUSR2, main checks its own credentials (raw getresuid/getresgid, per thread) and
// wakes the worker, which checks its own and reports through the pipe; the worker also
// checks that it really lost its privileges (it cannot setresuid back to 0).
//
// Usage: thread_creds PIDFILE
#include "wl.h"
#include <pthread.h>
#include <sys/syscall.h>

static int go[2], rep[2];

static int creds_are(uid_t u, gid_t g)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	if (syscall(SYS_getresuid, &r, &e, &s) || syscall(SYS_getresgid, &gr, &ge, &gs))
		return 0;
	return r == u && e == u && s == u && gr == g && ge == g && gs == g;
}

static void *worker(void *arg)
{
	(void)arg;
	int ok = syscall(SYS_setresgid, 1234, 1234, 1234) == 0 &&
		 syscall(SYS_setresuid, 4321, 4321, 4321) == 0;
	char c = ok ? 'r' : 'e';
	if (write(rep[1], &c, 1) != 1)
		_exit(5);
	if (read(go[0], &c, 1) != 1)
		_exit(6);
	// 'a': own credentials back; 'b': the process's; 'c': privileged again.
	if (!creds_are(4321, 1234))
		c = 'b';
	else if (syscall(SYS_setresuid, 0, 0, 0) == 0)
		c = 'c';
	else
		c = 'a';
	if (write(rep[1], &c, 1) != 1)
		_exit(7);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	if (getuid() != 0) {
		wl_skip("thread-creds", "needs root");
		return 0;
	}
	if (pipe(go) || pipe(rep))
		wl_setup_fail("pipe");
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL))
		wl_setup_fail("pthread_create");
	char c;
	if (read(rep[0], &c, 1) != 1 || c != 'r')
		wl_setup_fail("worker could not drop its credentials");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	wl_check(creds_are(0, 0), "main-thread-still-root", "main lost its root credentials");
	if (write(go[1], "g", 1) != 1 || read(rep[0], &c, 1) != 1)
		wl_setup_fail("worker pipe");
	wl_check(c == 'a', "worker-own-credentials",
		 "worker reported %c (b: has the process's credentials, c: privileged again)", c);
	pthread_join(t, NULL);
	wl_finish();
}
