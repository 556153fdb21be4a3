// process.c: per-process kernel attributes: PID, session and process group,
// cwd, umask, all 16 rlimits, personality, comm, oom_score_adj, credentials and
// capabilities, the rseq registration, the robust futex list head, the
// clear_child_tid address, the mm's recorded layout (cmdline, environ,
// auxv, exe link, start/end fields of /proc/self/stat).
// build:
//
// Why it matters: none of this is in the process's memory, all of it is in
// the kernel, and programs depend on it: the PID is in pidfiles and lock
// files; a wrong session breaks job control and terminals; a lost cwd or
// umask makes relative paths and file modes wrong; rlimits change
// behaviour; glibc relies on its rseq registration (sched_getcpu), on the
// robust list (robust mutexes) and on clear_child_tid (pthread_join);
// ps/top and the program itself read /proc/self/{comm,cmdline,environ,exe}.
//
// It calls setsid() first, so it must not be started as a process group
// leader (a shell with job control would do that).
//
// Usage: process PIDFILE [TMPDIR]
// WL_SABOTAGE=1: changes the umask to 022 after the pidfile is written (as a
// restore that forgot it would); "umask" must FAIL.
#define _GNU_SOURCE
#include "wl.h"
#include <grp.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#define NRLIM 16 /* RLIMIT_CPU .. RLIMIT_RTTIME */

struct snap {
	pid_t pid, sid, pgrp;
	char cwd[4096];
	dev_t cwd_dev;
	ino_t cwd_ino;
	struct rlimit rl[NRLIM];
	int persona;
	char comm[17];
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int ngroups;
	gid_t groups[256];
	char caps[1024];
	void *robust_head;
	size_t robust_len;
	void *tid_addr;
	int tid_addr_ok;
	char cmdline[8192], environ[65536], exe[4096], auxv[4096], mm[512];
	long cmdline_len, environ_len, auxv_len;
};
static struct snap before, after;
static const char *rl_names[NRLIM] = {
	"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
	"MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"
};
static char statusbuf[8192];

static volatile struct rseq *rseq_area(void)
{
	return (volatile struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* The Cap*, NoNewPrivs and Seccomp lines of /proc/self/status. */
static void read_caps(char *out, size_t size)
{
	static const char *keys[] = { "CapInh:", "CapPrm:", "CapEff:", "CapBnd:",
				      "CapAmb:", "NoNewPrivs:", "Seccomp:" };
	out[0] = 0;
	if (wl_read_file("/proc/self/status", statusbuf, sizeof statusbuf) < 0)
		return;
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		char *p = strstr(statusbuf, keys[i]);
		if (!p)
			continue;
		size_t n = strcspn(p, "\n");
		size_t len = strlen(out);
		if (len + n + 2 < size) {
			memcpy(out + len, p, n);
			out[len + n] = ' ';
			out[len + n + 1] = 0;
		}
	}
}

/* Fields 26-28 and 45-51 of /proc/self/stat: code, stack, data, brk,
 * arg and env boundaries, as the kernel recorded them for this mm. */
static void read_mm_fields(char *out, size_t size)
{
	static char buf[4096];
	out[0] = 0;
	if (wl_read_file("/proc/self/stat", buf, sizeof buf) < 0)
		return;
	char *p = strrchr(buf, ')');
	if (!p)
		return;
	int field = 2;
	for (char *tok = strtok(p + 1, " \n"); tok; tok = strtok(NULL, " \n")) {
		field++;
		if ((field >= 26 && field <= 28) || (field >= 45 && field <= 51)) {
			size_t len = strlen(out);
			snprintf(out + len, size - len, "%d=%s ", field, tok);
		}
	}
}

static void take(struct snap *s)
{
	s->pid = getpid();
	s->sid = getsid(0);
	s->pgrp = getpgrp();
	if (!getcwd(s->cwd, sizeof s->cwd))
		strcpy(s->cwd, "(getcwd failed)");
	struct stat st;
	if (stat(".", &st) == 0) {
		s->cwd_dev = st.st_dev;
		s->cwd_ino = st.st_ino;
	}
	for (int i = 0; i < NRLIM; i++)
		getrlimit(i, &s->rl[i]);
	s->persona = personality(0xffffffff);
	memset(s->comm, 0, sizeof s->comm);
	prctl(PR_GET_NAME, s->comm);
	getresuid(&s->ru, &s->eu, &s->su);
	getresgid(&s->rg, &s->eg, &s->sg);
	s->ngroups = getgroups(256, s->groups);
	read_caps(s->caps, sizeof s->caps);
	syscall(SYS_get_robust_list, 0, &s->robust_head, &s->robust_len);
	s->tid_addr_ok = prctl(PR_GET_TID_ADDRESS, &s->tid_addr) == 0;
	s->cmdline_len = wl_read_file("/proc/self/cmdline", s->cmdline, sizeof s->cmdline);
	s->environ_len = wl_read_file("/proc/self/environ", s->environ, sizeof s->environ);
	s->auxv_len = wl_read_file("/proc/self/auxv", s->auxv, sizeof s->auxv);
	ssize_t n = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
	s->exe[n > 0 ? n : 0] = 0;
	read_mm_fields(s->mm, sizeof s->mm);
}

/* Which rseq length the kernel has registered for us: re-registering the
 * same area with the same length and signature fails with EBUSY. */
static int rseq_registered_len(void)
{
	unsigned lens[] = { __rseq_size, 32 };
	for (int i = 0; i < 2; i++)
		if (lens[i] && syscall(SYS_rseq, rseq_area(), lens[i], 0, RSEQ_SIG) < 0 &&
		    errno == EBUSY)
			return (int)lens[i];
	return -1;
}

static void check_rseq(int len_before)
{
	if (__rseq_size == 0) {
		wl_skip("rseq", "glibc did not register rseq (glibc.pthread.rseq=0?)");
		return;
	}
	int32_t cpu_id = (int32_t)rseq_area()->cpu_id;
	wl_check(cpu_id >= 0, "rseq-cpu_id", "cpu_id is %d (-1: unregistered, -2: failed)",
		 cpu_id);
	int len = rseq_registered_len();
	wl_check(len == len_before, "rseq-registered",
		 "re-registering %p gave %s (len %d, before %d): not registered by the kernel "
		 "at the same address/length/signature", (void *)rseq_area(),
		 len < 0 ? strerror(errno) : "EBUSY", len, len_before);
	/* the kernel keeps cpu_id current: compare with the getcpu syscall
	 * (glibc's sched_getcpu would just read cpu_id back) */
	int ok = 0;
	unsigned cpu = 0;
	int32_t a = -1, b = -1;
	for (int i = 0; i < 1000 && !ok; i++) {
		a = (int32_t)rseq_area()->cpu_id;
		syscall(SYS_getcpu, &cpu, NULL, NULL);
		b = (int32_t)rseq_area()->cpu_id;
		ok = a == b && a == (int32_t)cpu;
		if (!ok)
			sched_yield();
	}
	wl_check(ok, "rseq-cpu-current", "rseq cpu_id %d/%d, getcpu() %u", a, b, cpu);
}

static void check_bytes(const char *name, const char *a, long alen, const char *b,
			long blen)
{
	long i = 0;
	while (i < alen && i < blen && a[i] == b[i])
		i++;
	wl_check(alen >= 0 && alen == blen && i == alen, name,
		 "%ld bytes before, %ld after, first difference at byte %ld", alen, blen, i);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	if (setsid() < 0)
		wl_setup_fail("setsid (started as a process group leader?)");
	wl_install_usr2();

	/* a relative PIDFILE names a file in the cwd we start in, not in the
	 * one we chdir into */
	static char pidfile[4000];
	if (argv[1][0] == '/' || !getcwd(pidfile, 2000))
		snprintf(pidfile, sizeof pidfile, "%s", argv[1]);
	else
		snprintf(pidfile + strlen(pidfile), sizeof pidfile - strlen(pidfile), "/%s", argv[1]);

	char dir[512];
	wl_mkdtemp(wl_tmpbase(argc > 2 ? argv[2] : NULL), "proc", dir, sizeof dir);
	if (chdir(dir) < 0)
		wl_setup_fail("chdir");
	umask(027);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 200 < rl.rlim_max ? 200 : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		wl_setup_fail("setrlimit NOFILE");
	getrlimit(RLIMIT_CORE, &rl);
	rl.rlim_cur = 0;
	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		wl_setup_fail("setrlimit CORE");
	/* a non-default personality flag that changes nothing until exec */
	if (personality(personality(0xffffffff) | ADDR_NO_RANDOMIZE) < 0)
		wl_setup_fail("personality");
	if (prctl(PR_SET_NAME, "stasis-wl-p") < 0)
		wl_setup_fail("PR_SET_NAME");
	/* the OOM killer's adjustment (raising it needs no privilege) */
	int oom = open("/proc/self/oom_score_adj", O_WRONLY);
	if (oom < 0 || write(oom, "400", 3) != 3)
		wl_setup_fail("oom_score_adj");
	close(oom);
	int rseq_len = __rseq_size ? rseq_registered_len() : -1;
	if (__rseq_size && rseq_len < 0)
		wl_setup_fail("rseq: glibc says registered but the kernel disagrees");

	take(&before);
	wl_write_pidfile(pidfile);
	if (wl_sabotage())
		umask(022);
	wl_wait_usr2();
	take(&after);

	/* identity */
	char pidbuf[64] = "";
	long n = wl_read_file(pidfile, pidbuf, sizeof pidbuf);
	wl_check(after.pid == before.pid && syscall(SYS_gettid) == before.pid, "pid",
		 "getpid %d gettid %ld, expected %d", after.pid, syscall(SYS_gettid),
		 before.pid);
	if (n < 0)
		wl_skip("pidfile", "PIDFILE was removed by the harness");
	else
		wl_check(atoi(pidbuf) == after.pid, "pidfile", "PIDFILE says %d, getpid %d",
			 atoi(pidbuf), after.pid);
	wl_check(after.sid == after.pid && after.pgrp == after.pid, "session",
		 "getsid %d getpgrp %d getpid %d: should all be equal", after.sid,
		 after.pgrp, after.pid);

	char oom_now[16] = "";
	wl_read_file("/proc/self/oom_score_adj", oom_now, sizeof oom_now);
	wl_check(atoi(oom_now) == 400, "oom_score_adj", "expected 400 got %s", oom_now);

	/* fs context */
	wl_check(strcmp(after.cwd, before.cwd) == 0 && after.cwd_ino == before.cwd_ino &&
		 after.cwd_dev == before.cwd_dev, "cwd",
		 "expected %s (ino %lu) got %s (ino %lu)", before.cwd,
		 (unsigned long)before.cwd_ino, after.cwd, (unsigned long)after.cwd_ino);
	mode_t um = umask(0);
	umask(um);
	wl_check(um == 027, "umask", "expected 027 got %03o", (unsigned)um);
	int fd = open("made-after-restore", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	struct stat st;
	char made[600];
	snprintf(made, sizeof made, "%s/made-after-restore", dir);
	if (fd >= 0) {
		wl_tmp_register(made);
		close(fd);
	}
	wl_check(fd >= 0 && stat(made, &st) == 0 && (st.st_mode & 0777) == (0666 & ~um),
		 "cwd-relative-create", "creating a relative file: %s, mode %03o",
		 fd < 0 ? strerror(errno) : "ok", (unsigned)(st.st_mode & 0777));

	/* limits and personality */
	int bad = -1;
	for (int i = 0; i < NRLIM && bad < 0; i++)
		if (after.rl[i].rlim_cur != before.rl[i].rlim_cur ||
		    after.rl[i].rlim_max != before.rl[i].rlim_max)
			bad = i;
	if (bad >= 0)
		wl_fail("rlimits", "RLIMIT_%s: expected %llu/%llu got %llu/%llu", rl_names[bad],
			(unsigned long long)before.rl[bad].rlim_cur,
			(unsigned long long)before.rl[bad].rlim_max,
			(unsigned long long)after.rl[bad].rlim_cur,
			(unsigned long long)after.rl[bad].rlim_max);
	else
		wl_check(after.rl[RLIMIT_NOFILE].rlim_cur <= 200 &&
			 after.rl[RLIMIT_CORE].rlim_cur == 0, "rlimits",
			 "NOFILE/CORE soft limits not the ones set");
	wl_check(after.persona == before.persona && (after.persona & ADDR_NO_RANDOMIZE),
		 "personality", "expected %#x got %#x", before.persona, after.persona);

	/* names */
	static char comm[64];
	wl_read_file("/proc/self/comm", comm, sizeof comm);
	wl_check(strcmp(after.comm, "stasis-wl-p") == 0 && strcmp(comm, "stasis-wl-p\n") == 0,
		 "comm", "PR_GET_NAME \"%s\", /proc/self/comm \"%.*s\"", after.comm,
		 (int)strcspn(comm, "\n"), comm);
	check_bytes("cmdline", before.cmdline, before.cmdline_len, after.cmdline,
		    after.cmdline_len);
	check_bytes("environ", before.environ, before.environ_len, after.environ,
		    after.environ_len);
	check_bytes("auxv", before.auxv, before.auxv_len, after.auxv, after.auxv_len);
	wl_check(strcmp(before.exe, after.exe) == 0 && before.exe[0], "exe",
		 "expected %s got %s", before.exe, after.exe);
	wl_check(strcmp(before.mm, after.mm) == 0, "mm-fields",
		 "/proc/self/stat fields: expected %s got %s", before.mm, after.mm);

	/* credentials */
	wl_check(after.ru == before.ru && after.eu == before.eu && after.su == before.su &&
		 after.rg == before.rg && after.eg == before.eg && after.sg == before.sg,
		 "creds", "uid %d/%d/%d gid %d/%d/%d, expected %d/%d/%d %d/%d/%d",
		 after.ru, after.eu, after.su, after.rg, after.eg, after.sg, before.ru,
		 before.eu, before.su, before.rg, before.eg, before.sg);
	wl_check(after.ngroups == before.ngroups &&
		 memcmp(after.groups, before.groups,
			sizeof(gid_t) * (before.ngroups > 0 ? before.ngroups : 0)) == 0,
		 "groups", "%d supplementary groups, expected %d (or different ones)",
		 after.ngroups, before.ngroups);
	wl_check(strcmp(after.caps, before.caps) == 0, "caps", "expected [%s] got [%s]",
		 before.caps, after.caps);

	/* glibc's per-thread kernel registrations */
	check_rseq(rseq_len);
	wl_check(after.robust_head == before.robust_head &&
		 after.robust_len == before.robust_len, "robust-list",
		 "head %p len %zu, expected %p %zu", after.robust_head, after.robust_len,
		 before.robust_head, before.robust_len);
	if (!before.tid_addr_ok)
		wl_skip("clear_child_tid", "PR_GET_TID_ADDRESS unsupported (no CONFIG_CHECKPOINT_RESTORE)");
	else
		wl_check(after.tid_addr == before.tid_addr, "clear_child_tid",
			 "expected %p got %p", before.tid_addr, after.tid_addr);
	wl_finish();
}
