// pty.c: a pseudo-terminal the process owns (master and slave) survives dump/restore with its
// settings: raw mode (no echo, no canonical input), a 33x101 window; after restore bytes still
// flow both ways and tcgetattr/TIOCGWINSZ return what was set.
// build: -D_GNU_SOURCE
//
// Usage: pty PIDFILE
#include "wl.h"
#include <sys/ioctl.h>
#include <termios.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m))
		return 3;
	int s = open(ptsname(m), O_RDWR | O_NOCTTY);
	if (s < 0)
		return 3;
	struct termios t;
	tcgetattr(s, &t);
	cfmakeraw(&t);
	tcsetattr(s, TCSANOW, &t);
	struct winsize w = {.ws_row = 33, .ws_col = 101};
	ioctl(m, TIOCSWINSZ, &w);
	if (wl_sabotage()) {
		struct winsize z = {.ws_row = 1, .ws_col = 1};
		ioctl(m, TIOCSWINSZ, &z);
	}
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	int fails = 0;
	struct termios t2;
	tcgetattr(s, &t2);
	if (!(t2.c_lflag & (ECHO | ICANON)))
		printf("ok pty-raw\n");
	else {
		printf("FAIL pty-raw: lflag %#x\n", t2.c_lflag);
		fails++;
	}
	struct winsize w2;
	ioctl(s, TIOCGWINSZ, &w2);
	if (w2.ws_row == 33 && w2.ws_col == 101)
		printf("ok pty-winsize\n");
	else {
		printf("FAIL pty-winsize: %dx%d\n", w2.ws_row, w2.ws_col);
		fails++;
	}
	char b[16] = {0};
	if (write(m, "in", 2) == 2 && read(s, b, sizeof b) == 2 && !memcmp(b, "in", 2) && write(s, "out", 3) == 3 &&
	    read(m, b, sizeof b) == 3 && !memcmp(b, "out", 3))
		printf("ok pty-flows\n");
	else {
		printf("FAIL pty-flows\n");
		fails++;
	}
	printf("# %s: %d check(s) failed\n", fails ? "FAILED" : "PASSED", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
