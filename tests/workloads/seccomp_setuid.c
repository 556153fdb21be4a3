// seccomp_setuid.c: a seccomp filter installed by root WITHOUT no_new_privs (allowed with
// CAP_SYS_ADMIN), after which the process drops to uid/gid 1000 and loses every capability
// (as in zdtm's seccomp filter tests run as root). A restorer that sets the saved
// credentials first can no longer install the filter (EACCES: no CAP_SYS_ADMIN, no
// no_new_privs); it must install it before, with the filter kept from judging its own remote
// syscalls.
// build:
//
// Usage: seccomp_setuid PIDFILE   (as root; the pidfile's directory is made world-writable
// (sticky) so that uid 1000 can still write the pidfile)
// The filter makes getppid fail with errno 77 and allows everything else. After SIGUSR2:
// getppid still fails with 77, getpid works, no_new_privs is still 0, /proc/self/status says
// Seccomp 2 with one filter, the ids are 1000 and there is no capability left (setuid(0)
// fails).
#include "wl.h"
#include <grp.h>
#include <libgen.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define ERRNO_MARK 77

static int status_field(const char *name, char *out, size_t outlen)
{
	char buf[8192];
	if (wl_read_file("/proc/self/status", buf, sizeof buf) <= 0)
		return 0;
	size_t n = strlen(name);
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (!strncmp(l, name, n) && l[n] == ':') {
			char *v = l + n + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			snprintf(out, outlen, "%s", v);
			return 1;
		}
	return 0;
}

static int filtered(void)
{
	errno = 0;
	long r = syscall(SYS_getppid);
	return r == -1 && errno == ERRNO_MARK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	if (geteuid() != 0) {
		wl_skip("seccomp-setuid", "needs root");
		wl_finish();
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", argv[1]);
	if (chmod(dirname(dir), 01777))
		wl_setup_fail("chmod the pidfile's directory");

	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ERRNO_MARK),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = 4, .filter = f};
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0) {
		errno = EINVAL;
		wl_setup_fail("no_new_privs already set");
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		wl_setup_fail("seccomp(SET_MODE_FILTER) without no_new_privs");
	if (setgroups(0, NULL) || setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
		wl_setup_fail("drop to uid 1000");
	if (!filtered())
		wl_setup_fail("the filter does not work before the dump");
	char cap[64] = "";
	status_field("CapEff", cap, sizeof cap);
	printf("# uid 1000, CapEff %s\n", cap);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	wl_check(filtered(), "seccomp-filter", "getppid returned errno %d", errno);
	wl_check(getpid() > 0 && syscall(SYS_gettid) == getpid(), "other-syscalls-allowed",
		 "getpid %d", (int)getpid());
	int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	wl_check(nnp == 0, "no-new-privs-unset", "PR_GET_NO_NEW_PRIVS %d", nnp);
	char mode[64] = "", nf[64] = "";
	status_field("Seccomp", mode, sizeof mode);
	status_field("Seccomp_filters", nf, sizeof nf);
	wl_check(!strcmp(mode, "2") && !strcmp(nf, "1"), "seccomp-status",
		 "Seccomp %s Seccomp_filters %s", mode, nf);
	uid_t r, e, s;
	gid_t gr, ge, gs;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	wl_check(r == 1000 && e == 1000 && s == 1000 && gr == 1000 && ge == 1000 && gs == 1000, "ids",
		 "uid %d/%d/%d gid %d/%d/%d", (int)r, (int)e, (int)s, (int)gr, (int)ge, (int)gs);
	status_field("CapEff", cap, sizeof cap);
	wl_check(!strcmp(cap, "0000000000000000") && setuid(0) == -1, "no-capabilities", "CapEff %s",
		 cap);
	wl_finish();
}
