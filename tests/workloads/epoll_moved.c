// epoll_moved.c: epoll registrations that outlive the fd number they were made with (as
// zdtm's epoll and epoll01 make them): a pipe's read end registered as fd 10, then fd 10
// closed (the pipe stays open at its own fd) and reused by an eventfd registered too; the
// pipe's write end registered as fd 11, then fd 11 closed. After restore all three fire
// with their own data words, fd 10 is still the eventfd and fd 11 is still closed.
//
// Usage: epoll_moved PIDFILE
#include "wl.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event e = {.events = events, .data.u64 = data};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
		wl_setup_fail("epoll_ctl");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int p[2];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || pipe(p) || write(p[1], "x", 1) != 1)
		wl_setup_fail("epoll, pipe");
	if (dup2(p[0], 10) != 10 || dup2(p[1], 11) != 11)
		wl_setup_fail("dup2");
	add(ep, 10, EPOLLIN, 0xA);
	add(ep, 11, EPOLLOUT, 0xC);
	close(10);
	close(11);
	int e = eventfd(1, EFD_NONBLOCK);
	if (e < 0 || dup2(e, 10) != 10)
		wl_setup_fail("eventfd at 10");
	close(e);
	add(ep, 10, EPOLLIN, 0xB);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	struct epoll_event evs[8];
	int n = epoll_wait(ep, evs, 8, 1000);
	int seen = 0;
	for (int i = 0; i < n; i++)
		seen |= evs[i].data.u64 == 0xA ? 1 : evs[i].data.u64 == 0xB ? 2 : evs[i].data.u64 == 0xC ? 4 : 8;
	wl_check(seen == 7, "all-three-fire", "%d events, seen mask %d (1 pipe read, 2 eventfd, 4 pipe write)", n, seen);
	uint64_t v = 0;
	wl_check(read(10, &v, sizeof v) == sizeof v && v == 1, "fd10-is-the-eventfd", "read %llu", (unsigned long long)v);
	wl_check(fcntl(11, F_GETFD) < 0 && errno == EBADF, "fd11-still-closed", "fd 11 is open");
	char c;
	wl_check(read(p[0], &c, 1) == 1 && c == 'x', "pipe-data", "lost");
	wl_finish();
}
