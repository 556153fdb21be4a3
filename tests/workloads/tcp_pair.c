// tcp_pair.c: an established TCP connection over loopback whose both ends are in the
// process, with bytes in flight both ways, survives dump --tcp-established / restore.
// build:
//
// Listens on 127.0.0.1 (port from the kernel), connects, accepts. The client end sends
// "hello-before" that the server end does not read; the server end sends 200 KiB of a
// pattern that the client end does not read (part of it waits in the server's send queue).
// After restore and SIGUSR2: the server reads "hello-before", the client reads the 200 KiB
// and checks the pattern, then 100 messages go each way and are checked; the ports are
// those of before.
//
// Usage: tcp_pair PIDFILE
#include "wl.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#define BULK (200 * 1024)

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = write(fd, (const char *)buf + done, n - done);
		if (r <= 0)
			return -1;
		done += r;
	}
	return 0;
}

static unsigned char pat(size_t i)
{
	return (unsigned char)(i * 13 + (i >> 8));
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	if (ls < 0 || bind(ls, (void *)&a, sizeof a) || listen(ls, 1) ||
	    getsockname(ls, (void *)&a, &al))
		wl_setup_fail("listen");
	int cl = socket(AF_INET, SOCK_STREAM, 0);
	if (cl < 0 || connect(cl, (void *)&a, sizeof a))
		wl_setup_fail("connect");
	int sv = accept(ls, NULL, NULL);
	if (sv < 0)
		wl_setup_fail("accept");
	close(ls);
	struct sockaddr_in cl_local, sv_local;
	socklen_t l1 = sizeof cl_local, l2 = sizeof sv_local;
	getsockname(cl, (void *)&cl_local, &l1);
	getsockname(sv, (void *)&sv_local, &l2);
	if (write_full(cl, "hello-before", 12))
		wl_setup_fail("client write");
	// The server end writes without blocking until the bulk is out or the queues are full.
	static unsigned char bulk[BULK];
	for (size_t i = 0; i < BULK; i++)
		bulk[i] = pat(i);
	fcntl(sv, F_SETFL, O_NONBLOCK);
	size_t sent = 0;
	while (sent < BULK) {
		ssize_t r = write(sv, bulk + sent, BULK - sent);
		if (r <= 0)
			break;
		sent += r;
	}
	fcntl(sv, F_SETFL, 0);
	wl_sleep(0.05);

	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	struct sockaddr_in c2, s2;
	l1 = sizeof c2;
	l2 = sizeof s2;
	getsockname(cl, (void *)&c2, &l1);
	getsockname(sv, (void *)&s2, &l2);
	wl_check(c2.sin_port == cl_local.sin_port && s2.sin_port == sv_local.sin_port, "ports",
		 "ports changed");
	char hello[12];
	wl_check(read_full(sv, hello, 12) == 0 && memcmp(hello, "hello-before", 12) == 0,
		 "server-receive-queue", "lost the bytes in flight to the server");
	// The rest of the bulk goes out now that the client reads.
	static unsigned char got[BULK];
	int ok_rest = sent == BULK || write_full(sv, bulk + sent, BULK - sent) == 0;
	int ok = ok_rest && read_full(cl, got, BULK) == 0;
	for (size_t i = 0; ok && i < BULK; i++)
		ok = got[i] == pat(i);
	wl_check(ok, "client-receive-and-send-queues", "the 200 KiB arrived damaged (sent %zu before the dump)", sent);
	int pp = 1;
	for (int i = 0; i < 100 && pp; i++) {
		char m[32], r[32];
		int n = snprintf(m, sizeof m, "ping %d", i);
		pp = write_full(cl, m, n) == 0 && read_full(sv, r, n) == 0 && memcmp(m, r, n) == 0;
		n = snprintf(m, sizeof m, "pong %d", i);
		pp = pp && write_full(sv, m, n) == 0 && read_full(cl, r, n) == 0 && memcmp(m, r, n) == 0;
	}
	wl_check(pp, "ping-pong", "the connection does not carry new data both ways");
	wl_finish();
}
