// unix_sockets.c: AF_UNIX sockets survive dump/restore: a stream socketpair and a datagram
// socketpair with data queued in both directions (message boundaries kept), a listening
// socket bound to a path (new connections are accepted after restore), and a connection
// accepted from it before the dump with data in flight.
// build:
//
// Usage: unix_sockets PIDFILE [TMPDIR]
#include "wl.h"
#include <sys/socket.h>
#include <sys/un.h>

static int fails;
static void expect(const char *name, int fd, const char *want, int len)
{
	char b[64] = {0};
	int n = read(fd, b, sizeof b);
	if (n == len && memcmp(b, want, len) == 0)
		printf("ok %s\n", name);
	else {
		printf("FAIL %s: read %d bytes \"%.*s\", expected \"%s\"\n", name, n, n > 0 ? n : 0, b, want);
		fails++;
	}
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
	int sp[2], dp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dp))
		return 3;
	if (write(sp[0], "hello", 5) != 5 || write(sp[1], "world!", 6) != 6 || write(dp[0], "d1", 2) != 2 ||
	    write(dp[0], "dgram2", 6) != 6)
		return 3;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s/wl-unix-%d.sock", tmp, (int)getpid());
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 5))
		return 3;
	int c1 = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(c1, (void *)&a, sizeof a))
		return 3;
	int s1 = accept(l, NULL, NULL);
	if (s1 < 0 || write(c1, "to-server", 9) != 9 || write(s1, "to-client", 9) != 9)
		return 3;
	if (wl_sabotage()) {
		char b[8];
		if (read(sp[1], b, 5) != 5)
			return 3;
	}
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	expect("stream-queue-1", sp[1], "hello", 5);
	expect("stream-queue-2", sp[0], "world!", 6);
	expect("dgram-message-1", dp[1], "d1", 2);
	expect("dgram-message-2", dp[1], "dgram2", 6);
	expect("accepted-queue-server", s1, "to-server", 9);
	expect("accepted-queue-client", c1, "to-client", 9);
	if (write(sp[0], "again", 5) == 5)
		expect("stream-after", sp[1], "again", 5);
	int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
	int r = connect(c2, (void *)&a, sizeof a);
	int s2 = r == 0 ? accept(l, NULL, NULL) : -1;
	if (s2 >= 0 && write(c2, "new", 3) == 3)
		expect("listener-accepts", s2, "new", 3);
	else {
		printf("FAIL listener-accepts: connect %d accept %d\n", r, s2);
		fails++;
	}
	unlink(a.sun_path);
	printf("# %s: %d check(s) failed\n", fails ? "FAILED" : "PASSED", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
