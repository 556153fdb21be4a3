// inet_unbound.c: internet sockets made and not used yet (a TCP one, a non-blocking UDP one,
// an IPv6 TCP one): after restore each is still a socket of its family and type, unbound,
// and can be bound and used (zdtm unbound_sock).
//
// Usage: inet_unbound PIDFILE
#include "wl.h"
#include <netinet/in.h>
#include <sys/socket.h>

static int kind(int fd, int *family, int *type)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss, tl = sizeof *type;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) || getsockopt(fd, SOL_SOCKET, SO_TYPE, type, &tl))
		return -1;
	*family = ss.ss_family;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int tcp = socket(AF_INET, SOCK_STREAM, 0);
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	int tcp6 = socket(AF_INET6, SOCK_STREAM, 0);
	if (tcp < 0 || udp < 0 || tcp6 < 0)
		wl_setup_fail("socket");
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	int f = -1, t = -1;
	wl_check(kind(tcp, &f, &t) == 0 && f == AF_INET && t == SOCK_STREAM, "tcp", "family %d type %d", f, t);
	wl_check(kind(udp, &f, &t) == 0 && f == AF_INET && t == SOCK_DGRAM && (fcntl(udp, F_GETFL) & O_NONBLOCK),
		 "udp", "family %d type %d", f, t);
	wl_check(kind(tcp6, &f, &t) == 0 && f == AF_INET6 && t == SOCK_STREAM, "tcp6", "family %d type %d", f, t);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	wl_check(bind(tcp, (struct sockaddr *)&a, sizeof a) == 0 && listen(tcp, 1) == 0, "tcp-usable", "%s",
		 strerror(errno));
	wl_finish();
}
