// sysv_shm.c: SysV shared memory keeps its identity, attributes, contents and attaches.
// build:
//
// Segment A: key K (from our pid), 3 pages + 100 bytes, mode 0640. The parent attaches it
// twice (read-write, and read-only at another address). A helper child writes page 2 and
// exits: that page lives only in the segment, in no page table of the tree. Then a child
// (inheriting the read-write attach) writes page 1 and waits on a pipe.
// Segment B: IPC_PRIVATE, 64 KiB, filled with a pattern, removed (IPC_RMID) while still
// attached: it must come back attached but destroyed.
//
// After restore and SIGUSR2 the parent checks: shmget(K) gives A's id back; A's size, mode
// and attach count (4: two in each process); the three pages through both attaches; the read-only attach is
// read-only; B's contents and its "destroyed" mark; shmdt of the read-only attach works and
// drops the count to 3. The child checks the pages it sees and exits 0.
//
// Usage: sysv_shm PIDFILE
#include "wl.h"
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define PG 4096
#define A_SIZE (3 * PG + 100)
#define B_SIZE (64 * 1024)

static int pages_ok(const char *p)
{
	return memcmp(p, "parent", 6) == 0 && memcmp(p + PG, "child", 5) == 0 &&
	       memcmp(p + 2 * PG, "helper", 6) == 0 && p[3 * PG + 99] == 'z';
}

static int b_ok(const unsigned char *b)
{
	for (int i = 0; i < B_SIZE; i++)
		if (b[i] != (unsigned char)(i * 7 + 3))
			return 0;
	return 1;
}

static int maps_perms(const void *addr, char *out)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long s, e;
	int found = 0;
	while (f && fgets(line, sizeof line, f)) {
		if (sscanf(line, "%lx-%lx %4s", &s, &e, out) == 3 && s == (unsigned long)addr) {
			found = 1;
			break;
		}
	}
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	key_t key = 0x5a000000 | (getpid() & 0xffffff);
	int a_id = shmget(key, A_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	if (a_id < 0)
		wl_setup_fail("shmget A");
	char *a = shmat(a_id, NULL, 0);
	if (a == (void *)-1)
		wl_setup_fail("shmat A");
	memcpy(a, "parent", 6);
	a[3 * PG + 99] = 'z';
	int b_id = shmget(IPC_PRIVATE, B_SIZE, 0600);
	if (b_id < 0)
		wl_setup_fail("shmget B");
	unsigned char *b = shmat(b_id, NULL, 0);
	if (b == (void *)-1)
		wl_setup_fail("shmat B");
	for (int i = 0; i < B_SIZE; i++)
		b[i] = (unsigned char)(i * 7 + 3);
	if (shmctl(b_id, IPC_RMID, NULL))
		wl_setup_fail("IPC_RMID B");
	const char *r = shmat(a_id, NULL, SHM_RDONLY);
	if (r == (void *)-1)
		wl_setup_fail("shmat A read-only");

	pid_t helper = fork();
	if (helper == 0) {
		memcpy(a + 2 * PG, "helper", 6);
		_exit(0);
	}
	int st;
	if (helper < 0 || waitpid(helper, &st, 0) != helper || st != 0)
		wl_setup_fail("helper");

	int go[2];
	if (pipe(go))
		wl_setup_fail("pipe");
	pid_t child = fork();
	if (child == 0) {
		memcpy(a + PG, "child", 5);
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(4);
		_exit(pages_ok(a) && b_ok(b) ? 0 : 1);
	}
	if (child < 0)
		wl_setup_fail("fork");
	// The child has written its page before we go on.
	double until = wl_now() + 10;
	while (memcmp(a + PG, "child", 5) != 0 && wl_now() < until)
		wl_sleep(0.001);

	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	wl_check(shmget(key, 0, 0) == a_id, "key-gives-same-id", "shmget(key) = %d, want %d",
		 shmget(key, 0, 0), a_id);
	struct shmid_ds ds;
	if (wl_check(shmctl(a_id, IPC_STAT, &ds) == 0, "a-stat", "%s", strerror(errno))) {
		wl_check(ds.shm_segsz == A_SIZE, "a-size", "%zu", (size_t)ds.shm_segsz);
		wl_check((ds.shm_perm.mode & 0777) == 0640, "a-mode", "%o", ds.shm_perm.mode);
		wl_check(ds.shm_nattch == 4, "a-attach-count", "%lu", (unsigned long)ds.shm_nattch);
	}
	wl_check(pages_ok(a), "a-pages", "page contents differ");
	wl_check(pages_ok(r), "a-pages-read-only-attach", "page contents differ");
	char perms[8] = "";
	wl_check(maps_perms(r, perms) && strcmp(perms, "r--s") == 0, "read-only-attach",
		 "maps shows %s", perms);
	wl_check(b_ok(b), "b-pages", "contents differ");
	wl_check(shmctl(b_id, IPC_STAT, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST),
		 "b-destroyed", "mode %o", ds.shm_perm.mode);
	wl_check(shmdt(r) == 0, "shmdt", "%s", strerror(errno));
	wl_check(shmctl(a_id, IPC_STAT, &ds) == 0 && ds.shm_nattch == 3, "a-attach-count-after-shmdt",
		 "%lu", (unsigned long)ds.shm_nattch);
	if (write(go[1], "g", 1) != 1)
		wl_setup_fail("pipe write");
	wl_check(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child",
		 "status %x", st);
	shmdt(a);
	shmdt(b);
	shmctl(a_id, IPC_RMID, NULL);
	wl_finish();
}
