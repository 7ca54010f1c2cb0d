/*
 * fuzz_image.c: libFuzzer target for the image unpacker (fx_image_prepare).
 *
 * The input's first byte says what the rest is:
 * - (byte & 7) == 0: a whole image archive, as fx_deploy would store it
 *   (docker save output or an OCI layout packed as a tar);
 * - otherwise: up to four layer tars separated by LAYER_SEP, which this
 *   target packs as docker save output with a config whose User is
 *   USERS[(byte >> 3) & 3], so that the fuzzer works on the layers.
 * Tar headers in the layers (and in a whole archive) get their checksums
 * recomputed first: a mutated header is then read, not discarded.
 *
 * Each input is unpacked into BASE/cache/k, BASE being FX_FUZZ_IMAGE_DIR
 * (fuzz/run.sh: /tmp/fx-fuzz-image on a private tmpfs) or a directory of
 * its own in /tmp.  BASE also holds canary/keep, which the seeds' hostile
 * entries aim at (../../../canary, /tmp/fx-fuzz-image/canary).  Afterwards
 * it checks, beyond the sanitizers:
 * - BASE holds only cache and canary, canary only keep, unchanged, and
 *   cache only k: nothing was made outside the image's directory;
 * - a refused image leaves k empty with a reason; an accepted one leaves
 *   exactly config.json and rootfs;
 * - the rootfs holds only directories, regular files and symbolic links,
 *   none setuid or setgid, all owned by this process's user, no ".wh."
 *   names; every regular file has all its hard links inside the rootfs,
 *   none is larger than the limit and together they use no more disk than
 *   the byte limit allows;
 * - no file descriptor is left open.
 * Limits: FX_IMAGE_MAX_BYTES = 8 MiB, FX_IMAGE_MAX_ENTRIES = 2000 and
 * FX_IMAGE_MAX_READ = 64 MiB (bytes decompressed, written or not), so one
 * input cannot take long or fill the disk.
 *
 * As root it refuses to run where it could write to /etc (fuzz/run.sh runs
 * it with the root file system read-only in a private mount namespace),
 * unless FX_FUZZ_IMAGE_UNSAFE=1.  FX_FUZZ_IMAGE_VERBOSE=1 prints whether
 * each input was unpacked or why it was refused.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "fx_image.h"
#include "fx_log.h"

#define MAX_BYTES		(8 << 20)
#define MAX_ENTRIES		2000
#define MAX_LAYERS		4
#define MAX_INODES		4096
#define LAYER_SEP		"--fx-layer--"
#define KEEP			"canary: nothing may touch this\n"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const USERS[4] = {NULL, "app", "app:staff", "0:0"};

static char *base;
static char *cache;
static char *key_dir;
static struct stat canary_st;
static struct stat keep_st;
static bool verbose;			/* FX_FUZZ_IMAGE_VERBOSE set: say why */

/* What a walk of the rootfs found. */
typedef struct tally
{
	ino_t		ino[MAX_INODES];	/* regular files, each once */
	nlink_t		nlink[MAX_INODES];
	int			seen[MAX_INODES];	/* names found for it */
	int			n;
	unsigned long long disk;	/* bytes allocated to regular files */
} tally;

static void fail(const char *fmt,...)
			__attribute__((format(printf, 1, 2), noreturn));

static void
fail(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "fuzz_image: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

/* Remove NAME in DIRFD and all beneath it, never following a link. */
static void
remove_tree(int dirfd, const char *name)
{
	int			fd;
	DIR		   *d;
	struct dirent *de;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return;
	(void) fchmodat(dirfd, name, 0700, 0);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL)
		fail("cannot open \"%s\" to remove it: %s", name, strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			remove_tree(fd, de->d_name);
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		fail("cannot remove \"%s\": %s", name, strerror(errno));
}

/* The names in directory PATH, sorted, joined by spaces. */
static void
list(const char *path, char *out, size_t cap)
{
	struct dirent **names;
	int			n = scandir(path, &names, NULL, alphasort);
	size_t		len = 0;

	out[0] = '\0';
	if (n < 0)
		fail("cannot list \"%s\": %s", path, strerror(errno));
	for (int i = 0; i < n; i++)
	{
		if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0)
			len += (size_t) snprintf(out + len, len < cap ? cap - len : 0, "%s%s",
									 len ? " " : "", names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

static int
count_fds(void)
{
	DIR		   *d = opendir("/proc/self/fd");
	int			n = 0;

	if (d == NULL)
		return -1;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void
note_file(tally *t, const struct stat *st, const char *name)
{
	int			i;

	for (i = 0; i < t->n && t->ino[i] != st->st_ino; i++)
		;
	if (i == t->n)
	{
		if (t->n == MAX_INODES)
			fail("more than %d regular files in the rootfs", MAX_INODES);
		t->ino[i] = st->st_ino;
		t->nlink[i] = st->st_nlink;
		t->disk += (unsigned long long) st->st_blocks * 512;
		t->n++;
	}
	t->seen[i]++;
	if (st->st_size > MAX_BYTES)
		fail("\"%s\" has %lld bytes, more than the limit", name, (long long) st->st_size);
}

/* Check everything in directory FD (at PATH) and beneath it. */
static void
walk(int fd, const char *path, tally *t, int depth)
{
	DIR		   *d;
	struct dirent *de;
	int			dfd = dup(fd);

	if (depth > 200)
		fail("\"%s\" is nested more than 200 deep", path);
	if (dfd < 0 || (d = fdopendir(dfd)) == NULL)
		fail("cannot read \"%s\": %s", path, strerror(errno));
	while ((de = readdir(d)) != NULL)
	{
		struct stat st;
		char		sub[4096];
		int			cfd;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			fail("cannot stat \"%s\": %s", sub, strerror(errno));
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
			fail("\"%s\" is a device, fifo or socket (mode %o)", sub, st.st_mode);
		if (st.st_mode & (S_ISUID | S_ISGID))
			fail("\"%s\" is setuid or setgid (mode %o)", sub, st.st_mode);
		if (st.st_uid != geteuid())
			fail("\"%s\" belongs to uid %d", sub, (int) st.st_uid);
		if (strncmp(de->d_name, ".wh.", 4) == 0)
			fail("whiteout \"%s\" was made", sub);
		if (S_ISREG(st.st_mode))
			note_file(t, &st, sub);
		if (!S_ISDIR(st.st_mode))
			continue;
		(void) fchmodat(fd, de->d_name, 0700, 0);	/* a mode 0 directory */
		cfd = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0)
			fail("cannot open \"%s\": %s", sub, strerror(errno));
		walk(cfd, sub, t, depth + 1);
		close(cfd);
	}
	closedir(d);
}

static void
check_rootfs(const char *rootfs)
{
	static tally t;
	int			fd = open(rootfs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		fail("cannot open the rootfs \"%s\": %s", rootfs, strerror(errno));
	memset(&t, 0, sizeof(t));
	walk(fd, "rootfs", &t, 0);
	close(fd);
	for (int i = 0; i < t.n; i++)
		if ((nlink_t) t.seen[i] != t.nlink[i])
			fail("a file of the rootfs has %d names in it but %lu links: one is outside",
				 t.seen[i], (unsigned long) t.nlink[i]);
	/* a page per file at most beyond its data */
	if (t.disk > (unsigned long long) MAX_BYTES + (unsigned long long) t.n * 4096)
		fail("the rootfs uses %llu bytes of disk for %d files", t.disk, t.n);
}

/* The same file, unchanged: mode, owner, size, contents' time. */
static bool
same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_mode == b->st_mode &&
		a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
		a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Nothing outside BASE/cache/k changed; k holds what RC says. */
static void
check_outside(int rc, const fx_image *img, const char *why)
{
	char		names[512];
	char	   *path;
	struct stat st;

	list(base, names, sizeof(names));
	if (strcmp(names, "cache canary") != 0)
		fail("the base directory now holds \"%s\"", names);
	path = fx_xasprintf("%s/canary", base);
	list(path, names, sizeof(names));
	if (strcmp(names, "keep") != 0)
		fail("the canary directory now holds \"%s\"", names);
	if (lstat(path, &st) < 0 || !same_stat(&st, &canary_st))
		fail("the canary directory changed");
	free(path);
	path = fx_xasprintf("%s/canary/keep", base);
	if (lstat(path, &st) < 0 || !same_stat(&st, &keep_st) || st.st_nlink != 1)
		fail("canary/keep changed");
	free(path);
	list(cache, names, sizeof(names));
	if (strcmp(names, "k") != 0)
		fail("the cache now holds \"%s\"", names);
	list(key_dir, names, sizeof(names));
	if (rc < 0 && (names[0] != '\0' || why == NULL))
		fail("a refused image (%s) left \"%s\"", why ? why : "no reason given", names);
	if (rc == 0 && (strcmp(names, "config.json rootfs") != 0 || why != NULL ||
					img->rootfs == NULL))
		fail("an accepted image left \"%s\"", names);
}

/*
 * Recompute the checksum of each tar header in buf[0..len), following the
 * sizes in the headers, until one is not a ustar or GNU header.
 */
static void
fix_tar(unsigned char *buf, size_t len)
{
	size_t		off = 0;

	while (len - off >= 512)
	{
		unsigned char *h = buf + off;
		unsigned long sum = 0;
		unsigned long long size = 0;

		if (memcmp(h + 257, "ustar", 5) != 0)
			return;
		memset(h + 148, ' ', 8);
		for (int i = 0; i < 512; i++)
			sum += h[i];
		snprintf((char *) h + 148, 8, "%06lo", sum & 0777777);
		if (h[124] & 0x80)
			return;				/* base-256 size: leave the rest */
		for (int i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++)
			size = size * 8 + (unsigned long long) (h[i] - '0');
		if (size > len)
			return;
		off += 512 + (size + 511) / 512 * 512;
		if (off > len)
			return;
	}
}

static void
add_member(struct archive *a, const char *name, const void *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t) len);
	if (archive_write_header(a, e) != ARCHIVE_OK ||
		(len > 0 && archive_write_data(a, data, len) != (la_ssize_t) len))
		fail("cannot pack %s: %s", name, archive_error_string(a));
	archive_entry_free(e);
}

/*
 * docker save output with the layers separated by LAYER_SEP in
 * in[0..len) and the config's User: malloc'd, its size in *outlen.
 */
static unsigned char *
pack(unsigned char *in, size_t len, const char *user, size_t *outlen)
{
	struct archive *a = archive_write_new();
	size_t		cap = len + 64 * 1024;
	unsigned char *out = fx_xmalloc(cap);
	char		manifest[256] = "[{\"Config\":\"config.json\",\"Layers\":[";
	char	   *config;
	unsigned char *p = in;
	int			n = 0;

	archive_write_set_format_pax_restricted(a);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open_memory(a, out, cap, outlen) != ARCHIVE_OK)
		fail("cannot pack: %s", archive_error_string(a));
	while (n < MAX_LAYERS)
	{
		unsigned char *sep = memmem(p, len - (size_t) (p - in), LAYER_SEP,
									strlen(LAYER_SEP));
		size_t		left = len - (size_t) (p - in);
		size_t		llen = sep && n < MAX_LAYERS - 1 ? (size_t) (sep - p) : left;
		char		name[32];

		snprintf(name, sizeof(name), "l%d.tar", n);
		fix_tar(p, llen);
		add_member(a, name, p, llen);
		snprintf(manifest + strlen(manifest), sizeof(manifest) - strlen(manifest),
				 "%s\"%s\"", n ? "," : "", name);
		n++;
		if (llen == left)
			break;
		p += llen + strlen(LAYER_SEP);
	}
	strcat(manifest, "]}]");
	if (user)
		config = fx_xasprintf("{\"config\":{\"User\":\"%s\",\"Cmd\":[\"sh\"]}}", user);
	else
		config = fx_xstrdup("{\"config\":{\"Cmd\":[\"sh\"]}}");
	add_member(a, "manifest.json", manifest, strlen(manifest));
	add_member(a, "config.json", config, strlen(config));
	if (archive_write_close(a) != ARCHIVE_OK)
		fail("cannot pack: %s", archive_error_string(a));
	archive_write_free(a);
	free(config);
	return out;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("FX_FUZZ_IMAGE_DIR");
	char	   *path;
	int			fd;

	if (geteuid() == 0 && access("/etc", W_OK) == 0 &&
		getenv("FX_FUZZ_IMAGE_UNSAFE") == NULL)
	{
		fprintf(stderr, "fuzz_image: as root with a writable /etc, a bug could damage\n"
				"this machine; run it through fuzz/run.sh (read-only root in a\n"
				"mount namespace), or set FX_FUZZ_IMAGE_UNSAFE=1\n");
		exit(2);
	}
	setenv("FX_IMAGE_MAX_BYTES", "8388608", 1);
	setenv("FX_IMAGE_MAX_ENTRIES", "2000", 1);
	setenv("FX_IMAGE_MAX_READ", "67108864", 1);
	fx_log_min = FX_LOG_ERROR;
	verbose = getenv("FX_FUZZ_IMAGE_VERBOSE") != NULL;
	base = dir ? fx_xstrdup(dir) : fx_xasprintf("/tmp/fx-fuzz-image-%d", (int) getpid());
	remove_tree(AT_FDCWD, base);
	cache = fx_xasprintf("%s/cache", base);
	key_dir = fx_xasprintf("%s/k", cache);
	path = fx_xasprintf("%s/canary", base);
	if (mkdir(base, 0755) < 0 || mkdir(cache, 0755) < 0 || mkdir(path, 0755) < 0)
		fail("cannot make \"%s\": %s", base, strerror(errno));
	free(path);
	path = fx_xasprintf("%s/canary/keep", base);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, KEEP, strlen(KEEP)) != (ssize_t) strlen(KEEP) || close(fd) < 0)
		fail("cannot write \"%s\": %s", path, strerror(errno));
	if (lstat(path, &keep_st) < 0)
		fail("cannot stat \"%s\": %s", path, strerror(errno));
	free(path);
	path = fx_xasprintf("%s/canary", base);
	if (lstat(path, &canary_st) < 0)
		fail("cannot stat \"%s\": %s", path, strerror(errno));
	free(path);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *in;
	unsigned char *archive;
	size_t		len;
	fx_image	img;
	char	   *why = NULL;
	int			fds = count_fds();
	int			rc;

	if (size < 1)
		return 0;
	in = fx_xmalloc(size);
	memcpy(in, data + 1, size - 1);
	if ((data[0] & 7) == 0)
	{
		fix_tar(in, size - 1);
		archive = in;
		len = size - 1;
	}
	else
		archive = pack(in, size - 1, USERS[(data[0] >> 3) & 3], &len);
	rc = fx_image_prepare(cache, "k", archive, len, &img, &why);
	if (verbose)
		fprintf(stderr, "fuzz_image: %s%s\n", rc == 0 ? "unpacked" : "refused: ",
				rc == 0 ? "" : why);
	check_outside(rc, &img, why);
	if (rc == 0)
		check_rootfs(img.rootfs);
	if (count_fds() != fds)
		fail("%d file descriptors open before, %d after", fds, count_fds());
	fx_image_free(&img);
	free(why);
	if (archive != in)
		free(archive);
	free(in);
	remove_tree(AT_FDCWD, key_dir);
	return 0;
}
