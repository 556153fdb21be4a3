// fifo.c: a FIFO (named pipe) in the filesystem, open at both ends with bytes in flight,
// survives dump/restore: the bytes are read after restore, and the FIFO still carries new
// data from the write end to the read end.
// build:
//
// Usage: fifo PIDFILE [TMPDIR]
#include "wl.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	char path[512];
	snprintf(path, sizeof path, "%s/wl-fifo-%d", tmp, (int)getpid());
	unlink(path);
	if (mkfifo(path, 0600))
		return 3;
	int r = open(path, O_RDONLY | O_NONBLOCK);
	int w = open(path, O_WRONLY);
	if (r < 0 || w < 0 || write(w, "in-flight", 9) != 9)
		return 3;
	if (wl_sabotage()) {
		char b[9];
		if (read(r, b, 9) != 9)
			return 3;
	}
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();

	int fails = 0;
	char b[64] = {0};
	int n = read(r, b, sizeof b);
	if (n == 9 && !memcmp(b, "in-flight", 9))
		printf("ok fifo-buffered\n");
	else {
		printf("FAIL fifo-buffered: read %d \"%.*s\"\n", n, n > 0 ? n : 0, b);
		fails++;
	}
	n = write(w, "new", 3) == 3 ? read(r, b, sizeof b) : -1;
	if (n == 3 && !memcmp(b, "new", 3))
		printf("ok fifo-carries\n");
	else {
		printf("FAIL fifo-carries: %d\n", n);
		fails++;
	}
	int fl = fcntl(r, F_GETFL);
	if ((fl & O_NONBLOCK) && (fl & O_ACCMODE) == O_RDONLY && (fcntl(w, F_GETFL) & O_ACCMODE) == O_WRONLY)
		printf("ok fifo-flags\n");
	else {
		printf("FAIL fifo-flags: %#x\n", fl);
		fails++;
	}
	unlink(path);
	printf("# %s: %d check(s) failed\n", fails ? "FAILED" : "PASSED", fails);
	fflush(stdout);
	return fails ? 1 : 0;
}
