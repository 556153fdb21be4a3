// stdio.c: stdin, stdout and stderr that are not a terminal but files of their own, as a
// daemon started with `<fifo >>log 2>err` has them. After restore they must be the same
// files again (not the restore command's stdio): the same inodes, stdout still O_APPEND at
// the end of the log, and a line written into the FIFO after the restore is read from stdin.
//
// Usage: stdio PIDFILE   (fd 0 a FIFO, fd 1 a file opened O_APPEND, fd 2 a file)
#include "wl.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE\n", argv[0]);
		return 3;
	}
	wl_init();
	wl_install_usr2();
	struct stat before[3];
	for (int fd = 0; fd < 3; fd++)
		if (fstat(fd, &before[fd]))
			wl_setup_fail("fstat");
	if (!S_ISFIFO(before[0].st_mode) || !S_ISREG(before[1].st_mode) || !S_ISREG(before[2].st_mode)) {
		errno = EINVAL;
		wl_setup_fail("stdin must be a FIFO, stdout and stderr regular files");
	}
	printf("# started\n");
	fflush(stdout);
	wl_write_pidfile(argv[1]);
	wl_wait_usr2();
	for (int fd = 0; fd < 3; fd++) {
		struct stat now;
		char name[32];
		snprintf(name, sizeof name, "same-file-fd%d", fd);
		wl_check(fstat(fd, &now) == 0 && now.st_ino == before[fd].st_ino && now.st_dev == before[fd].st_dev,
			 name, "fd %d is another file now (inode %lu, was %lu)", fd, (unsigned long)now.st_ino,
			 (unsigned long)before[fd].st_ino);
	}
	int fl = fcntl(1, F_GETFL);
	wl_check(fl >= 0 && (fl & O_APPEND) && (fl & O_ACCMODE) == O_WRONLY, "stdout-flags", "flags %o", fl);
	char line[64] = {0};
	ssize_t n = read(0, line, sizeof line - 1);
	wl_check(n > 0 && strcmp(line, "after-restore\n") == 0, "stdin-reads-the-fifo", "read %zd: %s", n, line);
	fprintf(stderr, "stderr-after-restore\n");
	wl_finish();
}
