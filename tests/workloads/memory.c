// memory.c: every kind of memory mapping a normal program has survives a
// dump/restore with its contents, its protection and its place in the
// address space.
// build:
//
// Why it matters: a restored program dereferences the same pointers it held
// before, so every VMA must come back at the same address with the same
// permissions, and every page must hold the same bytes -- including the
// subtle cases: copy-on-write pages of a private file mapping (must keep the
// program's bytes while the file keeps its own), shared file mappings (must
// be re-linked to the file, not turned into a private copy), holes punched
// with MADV_DONTNEED (must read as zeros, not as the old contents), a huge
// sparse NORESERVE mapping (only the touched pages may be saved), PROT_NONE
// guard pages (must still fault), and the brk heap (the kernel's brk must
// match so malloc can keep growing it).
//
// The state is set up, then the program recurses 64 frames deep (each frame
// holding a patterned local array) and waits at the bottom for SIGUSR2.
//
// Usage: memory PIDFILE [TMPDIR]
// WL_SABOTAGE=1: flips one byte of the 16 MiB anonymous mapping after the
// pidfile is written; "anon-16m" must then FAIL.
#include "wl.h"
#include <malloc.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define PG 4096UL
#define MIB (1024UL * 1024)
#define GIB (1024UL * MIB)
#define DEPTH 64

/* pattern seeds: one stream per region so a region mixed up with another
 * is detected, not only a lost one */
enum { S_HEAP = 100, S_BIG, S_SBRK, S_ANON, S_FOLD, S_FNEW, S_RO, S_GUARD,
       S_SHARED, S_SHARED2, S_HOLE, S_SPARSE, S_STACK = 1000 };

struct node {
	struct node *next;
	unsigned idx;
	size_t len;
	unsigned char data[];
};

#define NNODES 20000
static struct node *list_head;
static unsigned char *big;		/* 8 MiB malloc */
#define BIG_LEN (8 * MIB)
static unsigned char *sbrk_area;	/* grown with sbrk() */
#define SBRK_LEN (256 * 1024UL)
static void *brk_saved;			/* kernel brk before the dump */
static unsigned char *anon;		/* 16 MiB private anonymous */
#define ANON_LEN (16 * MIB)
static unsigned char *fpriv;		/* 64 KiB private file mapping */
#define FPRIV_LEN (64 * 1024UL)
static const int fpriv_written[] = { 1, 5, 9, 15 }; /* COW pages */
static unsigned char *ro;		/* read-only anonymous with content */
#define RO_LEN (16 * PG)
static unsigned char *guard;		/* [rw][none][rw], one page each */
static unsigned char *shared;		/* MAP_SHARED file mapping */
#define SHARED_LEN (4 * PG)
static unsigned char *holey;		/* 64 pages, 10..19 MADV_DONTNEED */
#define HOLE_PAGES 64
#define HOLE_FIRST 10
#define HOLE_LAST 19
static unsigned char *sparse;		/* 4 GiB NORESERVE, 10 pages touched */
#define SPARSE_LEN (4 * GIB)

static char dir[512], fpriv_path[600], shared_path[600];
static unsigned char *frames[DEPTH];	/* stack arrays, for the record */
static int stack_bad;
static char maps_before[65536], maps_after[65536];
static sigjmp_buf segv_jmp;
static volatile sig_atomic_t segv_count;

static size_t sparse_off(int k) { return (SPARSE_LEN / 10) / PG * PG * k + 7 * PG * k; }
static size_t sparse_zero_off(int k) { return (SPARSE_LEN / 10) / PG * PG * k + 3 * PG; }

static void on_segv(int sig)
{
	(void)sig;
	segv_count++;
	siglongjmp(segv_jmp, 1);
}

static void *xmmap(void *addr, size_t len, int prot, int flags, int fd)
{
	void *p = mmap(addr, len, prot, flags, fd, 0);
	if (p == MAP_FAILED)
		wl_setup_fail("mmap");
	return p;
}

/* Create a file of len pattern bytes (stream seed) and return an fd. */
static int make_file(const char *path, size_t len, uint64_t seed)
{
	static unsigned char buf[64 * 1024];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		wl_setup_fail("open temp file");
	wl_tmp_register(path);
	for (size_t off = 0; off < len; off += sizeof buf) {
		size_t n = len - off < sizeof buf ? len - off : sizeof buf;
		wl_fill(buf, n, seed, off);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			wl_setup_fail("write temp file");
	}
	return fd;
}

static void setup(void)
{
	/* brk heap grown by hand, the way old allocators do */
	sbrk_area = sbrk(SBRK_LEN);
	if (sbrk_area == (void *)-1)
		wl_setup_fail("sbrk");
	wl_fill(sbrk_area, SBRK_LEN, S_SBRK, 0);

	/* many small mallocs in a linked list (brk heap) */
	struct node **tail = &list_head;
	for (unsigned i = 0; i < NNODES; i++) {
		size_t len = 16 + (i * 37u) % 240;
		struct node *n = malloc(sizeof *n + len);
		if (!n)
			wl_setup_fail("malloc");
		n->next = NULL;
		n->idx = i;
		n->len = len;
		wl_fill(n->data, len, S_HEAP + i * 7919ull, 0);
		*tail = n;
		tail = &n->next;
	}
	/* one big malloc (an mmap of its own, with the default threshold) */
	big = malloc(BIG_LEN);
	if (!big)
		wl_setup_fail("malloc 8 MiB");
	wl_fill(big, BIG_LEN, S_BIG, 0);

	/* 16 MiB private anonymous */
	anon = xmmap(NULL, ANON_LEN, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(anon, ANON_LEN, S_ANON, 0);

	/* private file mapping with some copy-on-write pages */
	int fd = make_file(fpriv_path, FPRIV_LEN, S_FOLD);
	fpriv = xmmap(NULL, FPRIV_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	close(fd); /* the mapping keeps the file; no fd needed */
	if (wl_mismatch(fpriv, 8 * PG, S_FOLD, 0) >= 0) /* fault in pages 0..7 */
		wl_setup_fail("private file mapping content");
	for (size_t i = 0; i < sizeof fpriv_written / sizeof *fpriv_written; i++) {
		size_t off = fpriv_written[i] * PG;
		wl_fill(fpriv + off, PG, S_FNEW, off);
	}

	/* read-only anonymous mapping with content */
	ro = xmmap(NULL, RO_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(ro, RO_LEN, S_RO, 0);
	if (mprotect(ro, RO_LEN, PROT_READ) < 0)
		wl_setup_fail("mprotect ro");

	/* PROT_NONE guard page between two RW pages */
	guard = xmmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(guard, PG, S_GUARD, 0);
	wl_fill(guard + 2 * PG, PG, S_GUARD, 2 * PG);
	if (mprotect(guard + PG, PG, PROT_NONE) < 0)
		wl_setup_fail("mprotect guard");

	/* MAP_SHARED file mapping, written through the mapping */
	fd = make_file(shared_path, SHARED_LEN, S_FOLD);
	shared = xmmap(NULL, SHARED_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	close(fd);
	wl_fill(shared, SHARED_LEN, S_SHARED, 0);

	/* a MADV_DONTNEED hole inside a written region */
	holey = xmmap(NULL, HOLE_PAGES * PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(holey, HOLE_PAGES * PG, S_HOLE, 0);
	if (madvise(holey + HOLE_FIRST * PG, (HOLE_LAST - HOLE_FIRST + 1) * PG,
		    MADV_DONTNEED) < 0)
		wl_setup_fail("madvise");

	/* a 4 GiB sparse mapping with 10 pages written */
	sparse = xmmap(NULL, SPARSE_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
	for (int k = 0; k < 10; k++)
		wl_fill(sparse + sparse_off(k), PG, S_SPARSE, sparse_off(k));

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_segv;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
}

/* ---- /proc/self/maps comparison ---- */

struct mapline {
	char range[64], perms[8], off[32], path[512];
};

static int is_special(const struct mapline *m)
{
	return strncmp(m->path, "[vvar", 5) == 0 || strcmp(m->path, "[vdso]") == 0;
}

/* Parse maps text into lines (skipping [vvar*] and [vdso]); returns count.
 * *vdso is set if a [vdso] line was present. */
static int parse_maps(char *text, struct mapline *out, int max, int *vdso)
{
	int n = 0;
	*vdso = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		struct mapline m = { "", "", "", "" };
		if (sscanf(line, "%63s %7s %31s %*s %*s %511[^\n]", m.range,
			   m.perms, m.off, m.path) < 3)
			continue;
		if (strcmp(m.path, "[vdso]") == 0)
			*vdso = 1;
		if (is_special(&m) || n >= max)
			continue;
		out[n++] = m;
	}
	return n;
}

/* Merge neighbours that the kernel may merge: adjacent, same perms, same name and (for files)
 * contiguous offsets. Whether two such VMAs are split depends on their history (e.g. one had
 * copy-on-write pages before an mprotect), which is not state a program can rely on; the
 * address, permission and backing of every byte is, and that is what is compared. */
static int coalesce(struct mapline *m, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (k > 0) {
			struct mapline *p = &m[k - 1];
			unsigned long ps, pe, s, e, po, o;
			sscanf(p->range, "%lx-%lx", &ps, &pe);
			sscanf(m[i].range, "%lx-%lx", &s, &e);
			po = strtoul(p->off, NULL, 16);
			o = strtoul(m[i].off, NULL, 16);
			if (pe == s && !strcmp(p->perms, m[i].perms) && !strcmp(p->path, m[i].path) &&
			    (p->path[0] != '/' || po + (pe - ps) == o)) {
				snprintf(p->range, sizeof p->range, "%08lx-%08lx", ps, e);
				continue;
			}
		}
		m[k++] = m[i];
	}
	return k;
}

static void check_maps(void)
{
	static struct mapline a[512], b[512];
	int vdso_a, vdso_b;
	int na = parse_maps(maps_before, a, 512, &vdso_a);
	int nb = parse_maps(maps_after, b, 512, &vdso_b);
	na = coalesce(a, na);
	nb = coalesce(b, nb);

	wl_check(vdso_b || !vdso_a, "maps-vdso", "[vdso] missing after restore");
	wl_check(na == nb, "maps-count",
		 "expected %d mappings (without vdso/vvar) got %d", na, nb);
	int n = na < nb ? na : nb, bad = -1, badname = -1;
	for (int i = 0; i < n; i++) {
		if (bad < 0 && (strcmp(a[i].range, b[i].range) ||
				strcmp(a[i].perms, b[i].perms)))
			bad = i;
		if (badname < 0 && (strcmp(a[i].path, b[i].path) ||
				    (a[i].path[0] == '/' && strcmp(a[i].off, b[i].off))))
			badname = i;
	}
	if (bad < 0 && na != nb)
		bad = n; /* first line present on one side only */
	if (bad >= 0)
		wl_fail("maps-layout", "mapping #%d: expected \"%s %s %s\" got \"%s %s %s\"",
			bad, bad < na ? a[bad].range : "-", bad < na ? a[bad].perms : "",
			bad < na ? a[bad].path : "", bad < nb ? b[bad].range : "-",
			bad < nb ? b[bad].perms : "", bad < nb ? b[bad].path : "");
	else
		wl_ok("maps-layout");
	if (badname >= 0)
		wl_fail("maps-names", "mapping %s: expected \"%s\" @%s got \"%s\" @%s",
			a[badname].range, a[badname].path, a[badname].off,
			b[badname].path, b[badname].off);
	else
		wl_ok("maps-names");
}

/* The perms column of the mapping containing addr, from maps_after. */
static const char *perms_of(const char *maps, void *addr, char *out)
{
	const char *p = maps;
	strcpy(out, "?");
	while (*p) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(p, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
		    (unsigned long)addr >= lo && (unsigned long)addr < hi) {
			strcpy(out, perms);
			break;
		}
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return out;
}

/* ---- checks after SIGUSR2 ---- */

static void check_file_bytes(const char *name, const char *path, size_t len,
			     int (*expect)(size_t off, uint8_t *exp))
{
	static unsigned char buf[64 * 1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		wl_fail(name, "open %s: %s", path, strerror(errno));
		return;
	}
	ssize_t r = pread(fd, buf, len, 0);
	close(fd);
	if (r != (ssize_t)len) {
		wl_fail(name, "short read of %s: %zd", path, r);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		uint8_t e;
		expect(i, &e);
		if (buf[i] != e) {
			wl_fail(name, "file byte %zu: expected 0x%02x got 0x%02x", i, e, buf[i]);
			return;
		}
	}
	wl_ok(name);
}

static int expect_fold(size_t off, uint8_t *e) { *e = wl_pat(S_FOLD, off); return 0; }
static int expect_shared(size_t off, uint8_t *e) { *e = wl_pat(S_SHARED, off); return 0; }
static int expect_shared2(size_t off, uint8_t *e)
{
	*e = (off / PG == 2) ? wl_pat(S_SHARED2, off) : wl_pat(S_SHARED, off);
	return 0;
}

static void verify_all(void)
{
	char perm[8];

	/* read the maps first: nothing below may change them yet */
	wl_read_file("/proc/self/maps", maps_after, sizeof maps_after);
	static char maps_copy[65536];
	memcpy(maps_copy, maps_after, sizeof maps_copy);
	check_maps(); /* consumes maps_before/maps_after (strtok) */

	/* heap: the list, the big block, the sbrk area, the kernel's brk */
	unsigned count = 0;
	long bad = -1;
	struct node *n;
	for (n = list_head; n && count < NNODES + 1; n = n->next, count++) {
		if (n->idx != count || n->len != 16 + (count * 37u) % 240 ||
		    wl_mismatch(n->data, n->len, S_HEAP + count * 7919ull, 0) >= 0) {
			bad = count;
			break;
		}
	}
	if (bad >= 0)
		wl_fail("heap-list", "node %ld at %p corrupted", bad, (void *)n);
	else
		wl_check(count == NNODES, "heap-list", "expected %d nodes got %u",
			 NNODES, count);
	wl_check_pat("heap-8m", big, BIG_LEN, S_BIG, 0);
	wl_check_pat("sbrk-area", sbrk_area, SBRK_LEN, S_SBRK, 0);
	void *kbrk = (void *)syscall(SYS_brk, 0);
	wl_check(kbrk == brk_saved, "brk", "kernel brk expected %p got %p",
		 brk_saved, kbrk);
	wl_check(sbrk(0) == brk_saved, "brk-libc", "sbrk(0) expected %p got %p",
		 brk_saved, sbrk(0));

	wl_check_pat("anon-16m", anon, ANON_LEN, S_ANON, 0);

	/* private file mapping: our bytes in the mapping, old ones in the file */
	int ok = 1;
	for (size_t pg = 0; pg < FPRIV_LEN / PG && ok; pg++) {
		int written = 0;
		for (size_t i = 0; i < sizeof fpriv_written / sizeof *fpriv_written; i++)
			written |= fpriv_written[i] == (int)pg;
		long b = wl_mismatch(fpriv + pg * PG, PG, written ? S_FNEW : S_FOLD, pg * PG);
		if (b >= 0) {
			wl_fail("file-private-map", "page %zu (%s) byte %ld differs", pg,
				written ? "written, COW" : "untouched", b);
			ok = 0;
		}
	}
	if (ok)
		wl_ok("file-private-map");
	check_file_bytes("file-private-file", fpriv_path, FPRIV_LEN, expect_fold);

	/* read-only anonymous mapping */
	wl_check_pat("ro-content", ro, RO_LEN, S_RO, 0);
	perms_of(maps_copy, ro, perm);
	wl_check(strcmp(perm, "r--p") == 0, "ro-perms", "expected r--p got %s", perm);

	/* guard page: still PROT_NONE, still faults; neighbours intact */
	wl_check_pat("guard-low", guard, PG, S_GUARD, 0);
	wl_check_pat("guard-high", guard + 2 * PG, PG, S_GUARD, 2 * PG);
	perms_of(maps_copy, guard + PG, perm);
	wl_check(strcmp(perm, "---p") == 0, "guard-perms", "expected ---p got %s", perm);
	segv_count = 0;
	if (sigsetjmp(segv_jmp, 1) == 0) {
		volatile unsigned char c = guard[PG];
		(void)c;
	}
	wl_check(segv_count == 1, "guard-faults", "reading the guard page did not fault");

	/* shared file mapping: mapping and file agree, new writes reach the file */
	wl_check_pat("file-shared-map", shared, SHARED_LEN, S_SHARED, 0);
	check_file_bytes("file-shared-file", shared_path, SHARED_LEN, expect_shared);
	perms_of(maps_copy, shared, perm);
	wl_check(strcmp(perm, "rw-s") == 0, "file-shared-perms", "expected rw-s got %s", perm);
	wl_fill(shared + 2 * PG, PG, S_SHARED2, 2 * PG);
	check_file_bytes("file-shared-write-after", shared_path, SHARED_LEN, expect_shared2);

	/* the MADV_DONTNEED hole reads as zeros, the rest as written */
	ok = 1;
	for (size_t pg = 0; pg < HOLE_PAGES && ok; pg++) {
		int hole = pg >= HOLE_FIRST && pg <= HOLE_LAST;
		long b = hole ? wl_nonzero(holey + pg * PG, PG)
			      : wl_mismatch(holey + pg * PG, PG, S_HOLE, pg * PG);
		if (b >= 0) {
			wl_fail("dontneed-hole", "page %zu (%s) byte %ld = 0x%02x", pg,
				hole ? "hole, expected 0" : "data", b, holey[pg * PG + b]);
			ok = 0;
		}
	}
	if (ok)
		wl_ok("dontneed-hole");

	/* the sparse mapping: 10 pages of data, zeros elsewhere */
	ok = 1;
	for (int k = 0; k < 10 && ok; k++) {
		long b = wl_mismatch(sparse + sparse_off(k), PG, S_SPARSE, sparse_off(k));
		long z = wl_nonzero(sparse + sparse_zero_off(k), PG);
		if (b >= 0 || z >= 0) {
			wl_fail("sparse-4g", "page #%d: data mismatch at %ld / zero page non-zero at %ld",
				k, b, z);
			ok = 0;
		}
	}
	if (ok && wl_nonzero(sparse + SPARSE_LEN - PG, PG) >= 0) {
		wl_fail("sparse-4g", "last page is not zero");
		ok = 0;
	}
	if (ok)
		wl_ok("sparse-4g");
}

/* Grow the stack VMA by 64 KiB now, so the pidfile write, the signal frame
 * and the checks below do not grow it after the layout snapshot. */
__attribute__((noinline)) static void prefault_stack(void)
{
	volatile unsigned char pad[64 * 1024];
	for (size_t i = 0; i < sizeof pad; i += 256)
		pad[i] = 1;
}

static void bottom(const char *pidfile)
{
	/* everything is set up: snapshot the layout, announce, wait */
	prefault_stack();
	brk_saved = (void *)syscall(SYS_brk, 0);
	if (wl_read_file("/proc/self/maps", maps_before, sizeof maps_before) <= 0)
		wl_setup_fail("read /proc/self/maps");
	wl_write_pidfile(pidfile);
	if (wl_sabotage())
		anon[12345] ^= 0xff;
	wl_wait_usr2();
	verify_all();
}

__attribute__((noinline)) static void descend(int depth, const char *pidfile)
{
	unsigned char buf[512];
	frames[depth] = buf; /* escapes: the compiler must keep it in memory */
	wl_fill(buf, sizeof buf, S_STACK + depth, 0);
	if (depth == DEPTH - 1)
		bottom(pidfile);
	else
		descend(depth + 1, pidfile);
	if (wl_mismatch(frames[depth], sizeof buf, S_STACK + depth, 0) >= 0)
		stack_bad++;
}

/* After the checks: the allocator and the address space keep working. */
static void keep_working(void)
{
	static void *blocks[10000];
	int bad = 0;
	for (int i = 0; i < 10000; i++) {
		size_t len = 1 + (i * 131u) % 1000;
		blocks[i] = malloc(len);
		if (!blocks[i]) {
			bad = 1;
			break;
		}
		wl_fill(blocks[i], len, 7, i);
	}
	for (int i = 0; i < 10000 && blocks[i]; i++) {
		if (wl_mismatch(blocks[i], 1 + (i * 131u) % 1000, 7, i) >= 0)
			bad = 1;
		free(blocks[i]);
	}
	wl_check(!bad, "malloc-after", "10000 malloc/free after restore went wrong");

	/* brk still grows: a large malloc served from the brk heap */
	mallopt(M_MMAP_THRESHOLD, 16 * MIB);
	unsigned long b0 = syscall(SYS_brk, 0);
	unsigned char *p = malloc(6 * MIB);
	unsigned long b1 = syscall(SYS_brk, 0);
	wl_check(p && b1 > b0 && (unsigned long)p + 6 * MIB <= b1, "brk-grows",
		 "malloc(6 MiB)=%p, brk %#lx -> %#lx", (void *)p, b0, b1);
	if (p) {
		memset(p, 0x5a, 6 * MIB);
		free(p);
	}

	/* and mmap still works */
	void *m = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wl_check(m != MAP_FAILED && memset(m, 1, MIB) && munmap(m, MIB) == 0,
		 "mmap-after", "mmap/munmap after restore failed: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PIDFILE [TMPDIR]\n", argv[0]);
		return 3;
	}
	if (sysconf(_SC_PAGESIZE) != (long)PG) {
		printf("FAIL setup: page size is not 4096\n");
		return 3;
	}
	wl_init();
	wl_install_usr2();
	wl_mkdtemp(wl_tmpbase(argc > 2 ? argv[2] : NULL), "mem", dir, sizeof dir);
	snprintf(fpriv_path, sizeof fpriv_path, "%s/private.bin", dir);
	snprintf(shared_path, sizeof shared_path, "%s/shared.bin", dir);
	setup();

	descend(0, argv[1]); /* waits and verifies at the bottom */
	wl_check(stack_bad == 0, "stack-64-frames",
		 "%d of %d frames lost their local array", stack_bad, DEPTH);
	keep_working();
	wl_finish();
}
