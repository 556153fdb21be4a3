// attrs.c: per-process and per-thread kernel attributes beyond ids: capability sets
// (effective, permitted, inheritable, bounding, ambient), securebits, an fs gid other than the
// effective gid, the audit loginuid, the scheduling policy, priority and nice value of the
// main thread (SCHED_RR) and of another thread (SCHED_OTHER), THP disabled by prctl, and a membarrier registration. None of it is
// in memory; a restore that forgets any of it changes what the program may do.
// build: -pthread
//
// Usage: attrs PIDFILE   (as root)
#include "wl.h"
#include <linux/capability.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static volatile int nice_tid;
static volatile int stop;

static void *worker(void *arg)
{
	(void)arg;
	struct sched_param other = {0};
	if (sched_setscheduler(0, SCHED_OTHER, &other) || setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 7))
		_exit(3);
	nice_tid = (int)syscall(SYS_gettid);
	while (!stop)
		wl_sleep(0.01);
	return NULL;
}

static void caps(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	if (syscall(SYS_capget, &h, d))
		wl_setup_fail("capget");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	/* loginuid first: it needs CAP_AUDIT_CONTROL, which goes below */
	int lf = open("/proc/self/loginuid", O_WRONLY);
	if (lf < 0 || write(lf, "4242", 4) != 4)
		wl_setup_fail("loginuid");
	close(lf);
	/* a nice value kept under a real-time policy (it applies again if the policy goes back) */
	struct sched_param sp = {.sched_priority = 5};
	if (setpriority(PRIO_PROCESS, 0, 3) || sched_setscheduler(0, SCHED_RR, &sp))
		wl_setup_fail("SCHED_RR");
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL))
		wl_setup_fail("pthread_create");
	while (!nice_tid)
		wl_sleep(0.001);
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		wl_setup_fail("THP disable");
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0))
		wl_setup_fail("membarrier register");
	if (setfsgid(4321) < 0)
		wl_setup_fail("setfsgid");
	if (prctl(PR_SET_SECUREBITS, 1 << 4 /* SECBIT_KEEP_CAPS */, 0, 0, 0))
		wl_setup_fail("securebits");
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0))
		wl_setup_fail("bounding set");
	struct __user_cap_data_struct d[2];
	caps(d);
	d[0].effective &= ~(1u << CAP_NET_RAW);
	d[0].permitted &= ~(1u << CAP_NET_RAW);
	d[0].inheritable = 1u << CAP_NET_BIND_SERVICE;
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	if (syscall(SYS_capset, &h, d))
		wl_setup_fail("capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0))
		wl_setup_fail("ambient");
	struct __user_cap_data_struct before[2];
	caps(before);

	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	struct __user_cap_data_struct after[2];
	caps(after);
	wl_check(memcmp(before, after, sizeof before) == 0, "caps",
		 "eff %x prm %x inh %x, were %x %x %x", after[0].effective, after[0].permitted, after[0].inheritable,
		 before[0].effective, before[0].permitted, before[0].inheritable);
	wl_check(prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0) == 0 && prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0) == 1,
		 "bounding-set", "CAP_SYS_BOOT back or CAP_CHOWN lost");
	wl_check(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) == 1, "ambient",
		 "CAP_NET_BIND_SERVICE not ambient");
	wl_check(prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) == 1 << 4, "securebits", "%d",
		 prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
	int fsgid = setfsgid(-1);
	wl_check(fsgid == 4321 && getegid() == 0, "fsgid", "fsgid %d egid %d", fsgid, (int)getegid());
	char lu[32] = "";
	wl_read_file("/proc/self/loginuid", lu, sizeof lu);
	wl_check(atoi(lu) == 4242, "loginuid", "%s", lu);
	struct sched_param now;
	wl_check(sched_getscheduler(0) == SCHED_RR && sched_getparam(0, &now) == 0 && now.sched_priority == 5,
		 "sched-policy", "policy %d", sched_getscheduler(0));
	errno = 0;
	int lnv = getpriority(PRIO_PROCESS, 0);
	wl_check(lnv == 3 && errno == 0, "leader-nice", "%d", lnv);
	errno = 0;
	int nv = getpriority(PRIO_PROCESS, (id_t)nice_tid);
	wl_check(nv == 7 && errno == 0, "thread-nice", "%d", nv);
	wl_check(sched_getscheduler(nice_tid) == SCHED_OTHER, "thread-policy", "%d", sched_getscheduler(nice_tid));
	wl_check(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "thp-disable", "not disabled");
	wl_check(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0, "membarrier",
		 "PRIVATE_EXPEDITED: %s", strerror(errno));
	stop = 1;
	pthread_join(th, NULL);
	wl_finish();
}
