// seccomp.c: seccomp survives dump/restore: a filter (installed with no_new_privs) that makes
// uname() fail with EPERM-like errno 77 while getpid() works, and a child in strict mode
// (only read/write/exit allowed) that answers through a pipe after restore.
// build:
//
// Usage: seccomp PIDFILE
#include "wl.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int to_child[2], from_child[2];
	if (pipe(to_child) || pipe(from_child))
		return 3;
	pid_t k = fork();
	if (k == 0) {
		char c;
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT))
			syscall(SYS_exit, 3);
		// Only read, write, exit and sigreturn from here on.
		if (syscall(SYS_read, to_child[0], &c, 1) == 1)
			syscall(SYS_write, from_child[1], "strict-ok", 9);
		syscall(SYS_exit, 0);
	}
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 77),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = 4, .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 3;
	usleep(50000);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	int fails = 0;
	struct utsname u;
	if (uname(&u) == -1 && errno == 77 && getpid() > 0)
		printf("ok seccomp-filter\n");
	else {
		printf("FAIL seccomp-filter: uname errno %d\n", errno);
		fails++;
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1)
		printf("ok no-new-privs\n");
	else {
		printf("FAIL no-new-privs\n");
		fails++;
	}
	char buf[16] = {0};
	if (write(to_child[1], "x", 1) == 1 && read(from_child[0], buf, 9) == 9 && !memcmp(buf, "strict-ok", 9))
		printf("ok seccomp-strict-child\n");
	else {
		printf("FAIL seccomp-strict-child\n");
		fails++;
	}
	int st;
	waitpid(k, &st, 0);
	printf("# %s: %d check(s) failed\n", fails ? "FAILED" : "PASSED", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
