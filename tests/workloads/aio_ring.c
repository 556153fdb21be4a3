// aio_ring.c: AIO contexts (io_setup) survive dump/restore at the same address. Ring A has
// gone around (its tail wrapped past the last slot: tail 1 < head 253) and holds 3 completed
// events nobody has reaped (aio_data 101, 102, 103); ring B is fresh. After SIGUSR2: both rings are mapped at
// their context ids as `/[aio]`, ring A's nr/head/tail are as before, io_getevents gives
// exactly the 3 events in order, and new requests on both contexts complete. Sabotage: reaps
// one event before the dump -> `aio-header`, `aio-pending-events`.
// build:
//
// Usage: aio_ring PIDFILE
#include "wl.h"
#include <linux/aio_abi.h>
#include <sys/syscall.h>

struct ring {
	unsigned id, nr, head, tail, magic, compat, incompat, header_length;
};

static long submit(aio_context_t ctx, int fd, char *buf, uint64_t data)
{
	struct iocb cb, *cbp = &cb;
	memset(&cb, 0, sizeof cb);
	cb.aio_fildes = fd;
	cb.aio_buf = (uint64_t)(uintptr_t)buf;
	cb.aio_nbytes = 1;
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_data = data;
	return syscall(SYS_io_submit, ctx, 1, &cbp);
}

static long reap(aio_context_t ctx, struct io_event *ev, long n)
{
	struct timespec ts = { 1, 0 };
	return syscall(SYS_io_getevents, ctx, n, n, ev, &ts);
}

// Whether /proc/self/maps has "/[aio]" starting at addr.
static int mapped_as_aio(uint64_t addr)
{
	static char maps[1 << 16];
	char want[64];
	if (wl_read_file("/proc/self/maps", maps, sizeof maps) < 0)
		return 0;
	snprintf(want, sizeof want, "\n%lx-", (unsigned long)addr);
	char *l = strstr(maps, want);
	if (!l)
		return 0;
	char *end = strchr(l + 1, '\n');
	char *aio = strstr(l, "/[aio]");
	return aio && (!end || aio < end);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	aio_context_t a = 0, b = 0;
	if (syscall(SYS_io_setup, 64, &a) || syscall(SYS_io_setup, 8, &b))
		wl_setup_fail("io_setup");
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		wl_setup_fail("open /dev/null");
	static char buf[1];
	struct io_event ev[8];
	// 253 requests reaped: head == tail == 253, near the end of ring A's 255 slots; then 3
	// left completed and unreaped: the tail went around (tail 1 < head 253).
	for (int i = 0; i < 253; i++)
		if (submit(a, fd, buf, i) != 1 || reap(a, ev, 1) != 1)
			wl_setup_fail("io_submit/io_getevents");
	for (int i = 0; i < 3; i++)
		if (submit(a, fd, buf, 101 + i) != 1)
			wl_setup_fail("io_submit");
	volatile struct ring *ra = (struct ring *)a;
	struct ring before = *(struct ring *)ra;
	printf("# ring A at %#lx: nr %u head %u tail %u; ring B at %#lx\n", (unsigned long)a,
	       before.nr, before.head, before.tail, (unsigned long)b);
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	if (wl_sabotage()) // a lost event: the restore dropped the ring's contents
		reap(a, ev, 1);
	wl_wait_usr2();

	wl_check(mapped_as_aio(a) && mapped_as_aio(b), "aio-mapped",
		 "the rings are not mapped as /[aio] at %#lx and %#lx", (unsigned long)a,
		 (unsigned long)b);
	wl_check(ra->nr == before.nr && ra->head == before.head && ra->tail == before.tail,
		 "aio-header", "nr/head/tail %u/%u/%u, expected %u/%u/%u", ra->nr, ra->head,
		 ra->tail, before.nr, before.head, before.tail);
	long n = reap(a, ev, 3);
	wl_check(n == 3 && ev[0].data == 101 && ev[1].data == 102 && ev[2].data == 103 &&
			 ev[0].res == 1,
		 "aio-pending-events", "got %ld events, data %llu %llu %llu", n,
		 (unsigned long long)ev[0].data, (unsigned long long)ev[1].data,
		 (unsigned long long)ev[2].data);
	struct timespec zero = { 0, 0 };
	n = syscall(SYS_io_getevents, a, 0, 8, ev, &zero);
	wl_check(n == 0, "aio-nothing-more", "%ld more events", n);
	int ok = 1;
	for (int i = 0; i < 300 && ok; i++) // around the ring more than once
		ok = submit(a, fd, buf, 1000 + i) == 1 && reap(a, ev, 1) == 1 &&
		     ev[0].data == (uint64_t)(1000 + i);
	wl_check(ok, "aio-ring-a-works", "a new request on ring A failed");
	ok = submit(b, fd, buf, 7) == 1 && reap(b, ev, 1) == 1 && ev[0].data == 7;
	wl_check(ok, "aio-ring-b-works", "a new request on ring B failed");
	wl_check(syscall(SYS_io_destroy, a) == 0 && syscall(SYS_io_destroy, b) == 0,
		 "aio-destroy", "io_destroy: %s", strerror(errno));
	wl_finish();
}
