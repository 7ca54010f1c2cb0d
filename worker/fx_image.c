/*
 * fx_image.c: container images without a container engine.
 *
 * An image archive is either `docker save` output (manifest.json naming a
 * config file and layer tars) or an OCI image layout packed as a tar
 * (index.json -> manifest blob -> config blob + layer blobs).  Its layers,
 * tars that may be compressed, are applied in order to
 * CACHE/<key>/rootfs.tmp-<pid>-<n> following the OCI changeset rules
 * (".wh.X" deletes X from lower layers, ".wh..wh..opq" hides everything
 * lower layers put in its directory), which is then renamed to
 * CACHE/<key>/rootfs.  The config fields the worker needs go to
 * CACHE/<key>/config.json first, so a rootfs in place always has its
 * config.  A worker that loses the race to rename discards its copy.
 *
 * Archive members are read from memory: one pass over the archive per
 * member, the layer streamed from the outer reader into a second one.
 *
 * An image is hostile input.  Each entry's path is normalised and refused
 * if absolute or with a ".." component; its parent directories are walked
 * from the root one component at a time without following symbolic links
 * (an entry beneath one is refused), and whatever lower layers left in its
 * place is removed; only then is it handed to libarchive, with the rootfs
 * path prefixed and libarchive's secure-extraction flags as a second line.
 * Hard links must name an existing non-directory inside the rootfs reached
 * the same way.  Devices, fifos and sockets are skipped, setuid and setgid
 * bits cleared, ownership not restored (all files belong to the worker),
 * extended attributes not restored, and bytes and entries are capped.
 * So are layers and the bytes decompressed on the way, counted as they
 * come (a member's data is read, not skipped, where skipping would mean
 * decompressing it unseen): a small archive of gigabytes of zeros, read
 * again for each of many layers, is refused once it has cost 100 times
 * its size.
 * Symbolic links are kept as they are: an absolute target means the
 * image's own root when the sandbox runs it.  libarchive sets directory
 * modes by path when its writer closes, so before an entry replaces
 * anything the same layer made, the writer is closed: no pending chmod can
 * follow a link put in a directory's place.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <cjson/cJSON.h>

#include "fx_bundle.h"
#include "fx_image.h"
#include "fx_log.h"

#define MAX_DEPTH		128		/* path components in a layer entry */
#define MAX_PATH		3072	/* bytes in a layer entry's path */
#define MAX_JSON		(16 << 20)	/* bytes in a manifest or config */
#define MAX_LINKS		8		/* links followed between archive members */
#define OPAQUE			".wh..wh..opq"
#define LOWER			"abcdefghijklmnopqrstuvwxyz"
#define UPPER			"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define DIGIT			"0123456789"
#define WHITEOUT		".wh."

typedef enum lex_mode
{
	LEX_STRICT,					/* refuse absolute paths and ".." */
	LEX_INSIDE,					/* ".." allowed while it stays inside */
	LEX_CLAMP					/* "/" is the root and ".." stops there */
} lex_mode;

/* The image archive, in memory, and what reading it has cost. */
typedef struct image_src
{
	const void *data;
	size_t		len;
	unsigned long long read;	/* bytes decompressed, every pass */
	unsigned long long max_read;
	unsigned long long ratio_read;	/* max_read by its size alone */
} image_src;

/* What to read from it. */
typedef struct image_plan
{
	char	   *config;			/* member holding the image config */
	char	  **layers;			/* members holding the layers, in order */
} image_plan;

/* A set of paths: what the current layer has put in the rootfs. */
typedef struct pathset
{
	char	  **slot;
	size_t		cap;			/* a power of two, or 0 */
	size_t		n;
} pathset;

/* Applying layers to a rootfs. */
typedef struct applier
{
	const char *root;			/* absolute path of the rootfs being built */
	int			rootfd;
	image_src  *src;
	bool		inflating;		/* the current layer is compressed */
	struct archive *disk;		/* libarchive writer for the current layer */
	pathset		seen;
	int			layer;			/* 1-based, for messages */
	unsigned long long bytes;
	unsigned long long entries;
	unsigned long long max_bytes;
	unsigned long long max_entries;
} applier;

/* A layer member being read through the outer archive's reader. */
typedef struct member_stream
{
	struct archive *outer;
	la_int64_t	offset;
	image_src  *src;
	char	  **why;
} member_stream;

static int	fail(char **why, int rc, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
static int	remove_at(int dirfd, const char *name, int depth);

/*
 * Set *why, unless an earlier failure already did (cleanup after a failure
 * must not hide its cause), and return RC.
 */
static int
fail(char **why, int rc, const char *fmt,...)
{
	va_list		ap;
	char	   *msg;

	if (*why != NULL)
		return rc;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	*why = msg;
	return rc;
}

static const char *
aerr(struct archive *a)
{
	const char *s = archive_error_string(a);

	return s ? s : "unknown error";
}

/* Is the reader decompressing what it reads? */
static bool
inflating(struct archive *a)
{
	return archive_filter_code(a, 0) != ARCHIVE_FILTER_NONE;
}

/* N more bytes decompressed: -EFBIG past the image's budget. */
static int
charge(image_src *src, size_t n, char **why)
{
	src->read += n;
	if (src->read <= src->max_read)
		return 0;
	if (src->max_read < src->ratio_read)
		return fail(why, -EFBIG, "image decompresses to more than %llu bytes "
					"(FX_IMAGE_MAX_READ)", src->max_read);
	return fail(why, -EFBIG, "image decompresses to more than %llu bytes "
				"(%llu times its archive of %zu bytes, at least %llu MiB): "
				"a compression bomb?", src->max_read, FX_IMAGE_READ_RATIO,
				src->len, FX_IMAGE_MIN_READ >> 20);
}

/*
 * The rest of the current entry's data, read and counted (not skipped: a
 * skip decompresses as much, at once and unseen).
 */
static int
drain(image_src *src, struct archive *in, char **why)
{
	const void *buf;
	size_t		n;
	la_int64_t	off;
	int			rc = 0;

	while (rc == 0 && archive_read_data_block(in, &buf, &n, &off) == ARCHIVE_OK)
		rc = charge(src, n, why);
	return rc;					/* a read error shows at the next header */
}

static void
strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/*
 * DIR/PATH with empty and "." components dropped and ".." resolved
 * lexically, as a relative path ("" for the root); NULL if MODE refuses.
 */
static char *
lexical(const char *dir, const char *path, lex_mode mode)
{
	char	   *buf;
	char	   *out;
	char	   *tok;
	char	   *save;
	size_t		n = 0;

	if (path[0] == '/' && mode != LEX_CLAMP)
		return NULL;
	buf = fx_xasprintf("%s/%s", path[0] == '/' ? "" : dir, path);
	out = fx_xmalloc(strlen(buf) + 1);
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
	{
		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0)
		{
			if (mode == LEX_STRICT || (n == 0 && mode == LEX_INSIDE))
			{
				free(buf);
				free(out);
				return NULL;
			}
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 0)
				n--;
			continue;
		}
		if (n > 0)
			out[n++] = '/';
		memcpy(out + n, tok, strlen(tok));
		n += strlen(tok);
	}
	out[n] = '\0';
	free(buf);
	return out;
}

/* The names in directory FD, other than "." and "..". */
static int
list_dir(int fd, char ***namesp, size_t *np)
{
	int			dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR		   *d;
	struct dirent *de;
	size_t		cap = 0;

	*namesp = NULL;
	*np = 0;
	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (d == NULL)
	{
		close(dfd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*np == cap)
		{
			cap = cap ? 2 * cap : 16;
			*namesp = fx_xrealloc(*namesp, cap * sizeof(char *));
		}
		(*namesp)[(*np)++] = fx_xstrdup(de->d_name);
	}
	closedir(d);
	return 0;
}

static void
names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Remove everything in directory FD. */
static int
empty_dir(int fd, int depth)
{
	char	  **names;
	size_t		n;
	int			rc = list_dir(fd, &names, &n);

	for (size_t i = 0; i < n && rc == 0; i++)
		rc = remove_at(fd, names[i], depth);
	names_free(names, n);
	return rc;
}

/* Remove NAME in directory DIRFD, recursively, never following a link. */
static int
remove_at(int dirfd, const char *name, int depth)
{
	int			fd;
	int			rc;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > MAX_DEPTH + 2)
		return -ELOOP;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void) fchmod(fd, 0700);	/* a read-only directory can be emptied */
	rc = empty_dir(fd, depth + 1);
	close(fd);
	if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		rc = -errno;
	return rc;
}

static size_t
path_hash(const char *p, size_t len)
{
	uint64_t	h = 14695981039346656037ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char) p[i]) * 1099511628211ULL;
	return (size_t) h;
}

/* The slot holding P (LEN bytes), or the empty one where it would go. */
static size_t
set_slot(const pathset *s, const char *p, size_t len)
{
	size_t		i = path_hash(p, len) & (s->cap - 1);

	while (s->slot[i] != NULL &&
		   (strncmp(s->slot[i], p, len) != 0 || s->slot[i][len] != '\0'))
		i = (i + 1) & (s->cap - 1);
	return i;
}

static bool
set_has(const pathset *s, const char *p)
{
	return s->cap > 0 && s->slot[set_slot(s, p, strlen(p))] != NULL;
}

static void
set_add(pathset *s, const char *p, size_t len)
{
	size_t		i;

	if (2 * (s->n + 1) > s->cap)
	{
		pathset		big = {fx_xcalloc(s->cap ? 2 * s->cap : 64, sizeof(char *)),
		s->cap ? 2 * s->cap : 64, s->n};

		for (i = 0; i < s->cap; i++)
			if (s->slot[i] != NULL)
				big.slot[set_slot(&big, s->slot[i], strlen(s->slot[i]))] = s->slot[i];
		free(s->slot);
		*s = big;
	}
	i = set_slot(s, p, len);
	if (s->slot[i] == NULL)
	{
		s->slot[i] = fx_xmalloc(len + 1);
		memcpy(s->slot[i], p, len);
		s->slot[i][len] = '\0';
		s->n++;
	}
}

/* Add REL and each directory above it. */
static void
set_add_path(pathset *s, const char *rel)
{
	for (const char *p = strchr(rel, '/'); p != NULL; p = strchr(p + 1, '/'))
		set_add(s, rel, (size_t) (p - rel));
	set_add(s, rel, strlen(rel));
}

static void
set_clear(pathset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slot[i]);
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

/*
 * Open directory NAME in DIRFD, never through a symbolic link (-ELOOP).
 * With CREATE, make it if missing, replacing a non-directory in the way:
 * an upper layer's directory hides a lower layer's file.
 */
static int
step_dir(int dirfd, const char *name, bool create)
{
	struct stat st;
	int			fd;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
	{
		if (S_ISLNK(st.st_mode))
			return -ELOOP;
		if (!S_ISDIR(st.st_mode))
		{
			if (!create)
				return -ENOTDIR;
			if (unlinkat(dirfd, name, 0) < 0 || mkdirat(dirfd, name, 0755) < 0)
				return -errno;
		}
	}
	else if (errno != ENOENT || !create)
		return -errno;
	else if (mkdirat(dirfd, name, 0755) < 0)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Open the directory made of REL's first LEN bytes, walking from the root. */
static int
open_dir(applier *ap, const char *rel, size_t len, bool create, int *fdp)
{
	int			fd = fcntl(ap->rootfd, F_DUPFD_CLOEXEC, 0);
	size_t		i = 0;

	if (fd < 0)
		return -errno;
	while (i < len)
	{
		char		name[NAME_MAX + 1];
		size_t		n = strcspn(rel + i, "/");
		int			next;

		if (n > NAME_MAX)
		{
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(name, rel + i, n);
		name[n] = '\0';
		next = step_dir(fd, name, create);
		close(fd);
		if (next < 0)
			return next;
		fd = next;
		i += n + 1;
	}
	*fdp = fd;
	return 0;
}

static void
disk_open(applier *ap)
{
	ap->disk = archive_write_disk_new();
	archive_write_disk_set_options(ap->disk,
								   ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
								   ARCHIVE_EXTRACT_SECURE_NODOTDOT |
								   ARCHIVE_EXTRACT_SECURE_SYMLINKS);
}

/* Close the writer: libarchive sets directory modes and times now. */
static int
disk_close(applier *ap, char **why)
{
	int			rc = 0;

	if (ap->disk == NULL)
		return 0;
	if (archive_write_close(ap->disk) < ARCHIVE_WARN)
		rc = fail(why, -EIO, "cannot unpack layer %d: %s", ap->layer, aerr(ap->disk));
	archive_write_free(ap->disk);
	ap->disk = NULL;
	return rc;
}

static int
too_big(applier *ap, char **why)
{
	return fail(why, -EFBIG, "image unpacks to more than %llu bytes", ap->max_bytes);
}

/*
 * Make room for entry REL: its parent directories exist, none is a
 * symbolic link, and what lower layers left in its place is gone unless
 * both are directories.  Replacing something this layer made first closes
 * the writer, so that no pending directory fixup (a chmod by path) can
 * meet a link put in its place.
 */
static int
make_room(applier *ap, const char *rel, bool is_dir, char **why)
{
	const char *slash = strrchr(rel, '/');
	const char *leaf = slash ? slash + 1 : rel;
	struct stat st;
	int			pfd;
	int			rc;

	rc = open_dir(ap, rel, slash ? (size_t) (slash - rel) : 0, true, &pfd);
	if (rc == -ELOOP)
		return fail(why, rc, "layer %d entry \"%s\" is beneath a symbolic link",
					ap->layer, rel);
	if (rc < 0)
		return fail(why, rc, "cannot create the directories of \"%s\" (layer %d): %s",
					rel, ap->layer, strerror(-rc));
	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		rc = errno == ENOENT ? 0 : -errno;
	else if (!is_dir || !S_ISDIR(st.st_mode))
	{
		if (set_has(&ap->seen, rel))
		{
			rc = disk_close(ap, why);
			disk_open(ap);
		}
		if (rc == 0)
			rc = remove_at(pfd, leaf, 0);
	}
	close(pfd);
	if (rc < 0)
		return fail(why, rc, "cannot replace \"%s\" (layer %d): %s",
					rel, ap->layer, strerror(-rc));
	set_add_path(&ap->seen, rel);
	return 0;
}

static int
copy_data(applier *ap, struct archive *in, const char *rel, char **why)
{
	const void *buf;
	size_t		n;
	la_int64_t	off;
	int			r;

	while ((r = archive_read_data_block(in, &buf, &n, &off)) == ARCHIVE_OK)
	{
		ap->bytes += n;
		if (ap->bytes > ap->max_bytes)
			return too_big(ap, why);
		if (ap->inflating && charge(ap->src, n, why) < 0)
			return -EFBIG;
		if (archive_write_data_block(ap->disk, buf, n, off) < ARCHIVE_WARN)
			return fail(why, -EIO, "cannot write \"%s\" (layer %d): %s",
						rel, ap->layer, aerr(ap->disk));
	}
	if (r != ARCHIVE_EOF)
		return fail(why, -EINVAL, "cannot read \"%s\" from layer %d: %s",
					rel, ap->layer, aerr(in));
	return 0;
}

/* Hand entry E to libarchive as ROOT/REL (a hard link to ROOT/LINK_REL). */
static int
write_entry(applier *ap, struct archive *in, struct archive_entry *e,
			const char *rel, const char *link_rel, char **why)
{
	char	   *path = fx_xasprintf("%s/%s", ap->root, rel);
	int			rc = 0;

	archive_entry_set_pathname(e, path);
	free(path);
	if (link_rel != NULL)
	{
		path = fx_xasprintf("%s/%s", ap->root, link_rel);
		archive_entry_set_hardlink(e, path);
		free(path);
	}
	archive_entry_set_uid(e, getuid());
	archive_entry_set_gid(e, getgid());
	archive_entry_set_perm(e, archive_entry_perm(e) & ~(S_ISUID | S_ISGID));
	if (archive_write_header(ap->disk, e) < ARCHIVE_WARN)
		rc = fail(why, -EIO, "cannot unpack \"%s\" (layer %d): %s",
				  rel, ap->layer, aerr(ap->disk));
	else if (archive_entry_size(e) > 0)
		rc = copy_data(ap, in, rel, why);
	if (rc == 0 && archive_write_finish_entry(ap->disk) < ARCHIVE_WARN)
		rc = fail(why, -EIO, "cannot unpack \"%s\" (layer %d): %s",
				  rel, ap->layer, aerr(ap->disk));
	return rc;
}

/* A hard link: its target must be a non-directory already in the rootfs. */
static int
apply_hardlink(applier *ap, struct archive *in, struct archive_entry *e,
			   const char *rel, char **why)
{
	const char *target = archive_entry_hardlink(e);
	char	   *trel = lexical("", target, LEX_STRICT);
	const char *slash;
	struct stat st;
	int			pfd;
	int			rc;

	if (trel == NULL || *trel == '\0')
	{
		free(trel);
		return fail(why, -EINVAL, "layer %d hard link \"%s\" points outside the root file system (to \"%s\")",
					ap->layer, rel, target);
	}
	slash = strrchr(trel, '/');
	rc = open_dir(ap, trel, slash ? (size_t) (slash - trel) : 0, false, &pfd);
	if (rc == 0)
	{
		if (fstatat(pfd, slash ? slash + 1 : trel, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
		else if (S_ISDIR(st.st_mode))
			rc = -EISDIR;
		close(pfd);
	}
	if (rc < 0)
		rc = fail(why, rc, "layer %d hard link \"%s\" has no target \"%s\" in the root file system: %s",
				  ap->layer, rel, trel, rc == -ELOOP ? "beneath a symbolic link" : strerror(-rc));
	else if (strcmp(trel, rel) != 0)
	{
		rc = make_room(ap, rel, false, why);
		if (rc == 0)
			rc = write_entry(ap, in, e, rel, trel, why);
	}
	free(trel);
	return rc;
}

/*
 * Remove what lower layers left in directory FD (REL): all the current
 * layer did not put there.
 */
static int
prune(applier *ap, int fd, const char *rel, int depth)
{
	char	  **names;
	size_t		n;
	int			rc = list_dir(fd, &names, &n);

	for (size_t i = 0; i < n && rc == 0; i++)
	{
		char	   *path = *rel ? fx_xasprintf("%s/%s", rel, names[i]) : fx_xstrdup(names[i]);
		struct stat st;
		int			cfd;

		if (!set_has(&ap->seen, path))
			rc = remove_at(fd, names[i], depth);
		else if (depth < MAX_DEPTH &&
				 fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				 S_ISDIR(st.st_mode))
		{
			cfd = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = cfd < 0 ? -errno : prune(ap, cfd, path, depth + 1);
			if (cfd >= 0)
				close(cfd);
		}
		free(path);
	}
	names_free(names, n);
	return rc;
}

/*
 * ".wh.NAME" removes NAME, ".wh..wh..opq" the lower content of its
 * directory; both only what lower layers made, and never through a link.
 */
static int
apply_whiteout(applier *ap, const char *rel, const char *base, char **why)
{
	size_t		dlen = base == rel ? 0 : (size_t) (base - rel - 1);
	const char *name = base + strlen(WHITEOUT);
	char	   *victim;
	int			dfd;
	int			rc = 0;

	if (strcmp(base, OPAQUE) == 0)
	{
		victim = fx_xasprintf("%.*s", (int) dlen, rel);
		if (open_dir(ap, rel, dlen, false, &dfd) == 0)
		{
			rc = prune(ap, dfd, victim, 0);
			close(dfd);
		}
		if (rc < 0)
			rc = fail(why, rc, "cannot empty opaque directory \"%s\" (layer %d): %s",
					  victim, ap->layer, strerror(-rc));
		free(victim);
		return rc;
	}
	if (strncmp(name, WHITEOUT, strlen(WHITEOUT)) == 0 || *name == '\0' ||
		strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;				/* aufs bookkeeping, or not a name */
	victim = dlen ? fx_xasprintf("%.*s/%s", (int) dlen, rel, name) : fx_xstrdup(name);
	if (!set_has(&ap->seen, victim) && open_dir(ap, rel, dlen, false, &dfd) == 0)
	{
		rc = remove_at(dfd, name, 0);
		close(dfd);
	}
	if (rc < 0)
		rc = fail(why, rc, "cannot remove whited-out \"%s\" (layer %d): %s",
				  victim, ap->layer, strerror(-rc));
	free(victim);
	return rc;
}

static int
apply_entry(applier *ap, struct archive *in, struct archive_entry *e, char **why)
{
	const char *name = archive_entry_pathname(e);
	mode_t		type = archive_entry_filetype(e);
	const char *base;
	char	   *rel;
	size_t		depth = 1;
	int			rc = 0;

	if (++ap->entries > ap->max_entries)
		return fail(why, -EFBIG, "image has more than %llu entries", ap->max_entries);
	if (name == NULL)
		return fail(why, -EINVAL, "layer %d has an entry without a readable name", ap->layer);
	rel = lexical("", name, LEX_STRICT);
	if (rel == NULL)
		return fail(why, -EINVAL, "layer %d entry \"%s\" points outside the root file system",
					ap->layer, name);
	for (const char *p = rel; *p; p++)
		depth += *p == '/';
	base = strrchr(rel, '/');
	base = base ? base + 1 : rel;
	if (strlen(rel) > MAX_PATH || depth > MAX_DEPTH)
		rc = fail(why, -ENAMETOOLONG, "layer %d entry \"%.60s...\" is nested too deeply",
				  ap->layer, rel);
	else if (*rel == '\0')
		rc = 0;					/* the root directory itself */
	else if (strncmp(base, WHITEOUT, strlen(WHITEOUT)) == 0)
		rc = apply_whiteout(ap, rel, base, why);
	else if (archive_entry_hardlink(e) != NULL)
		rc = apply_hardlink(ap, in, e, rel, why);
	else if (type == AE_IFREG && archive_entry_size(e) > 0 &&
			 (unsigned long long) archive_entry_size(e) > ap->max_bytes - ap->bytes)
		rc = too_big(ap, why);
	else if (type == AE_IFREG || type == AE_IFDIR || type == AE_IFLNK)
	{
		rc = make_room(ap, rel, type == AE_IFDIR, why);
		if (rc == 0)
			rc = write_entry(ap, in, e, rel, NULL, why);
	}
	/* else: devices, fifos and sockets have no place in an image */
	free(rel);
	return rc;
}

/* The layer's bytes, for the reader that unpacks it. */
static la_ssize_t
member_read(struct archive *a, void *client, const void **buf)
{
	member_stream *ms = client;
	size_t		n = 0;
	la_int64_t	off = ms->offset;
	int			r = ARCHIVE_OK;

	while (r == ARCHIVE_OK && n == 0)
		r = archive_read_data_block(ms->outer, buf, &n, &off);
	if (r == ARCHIVE_EOF)
		return 0;
	if (r == ARCHIVE_OK && inflating(ms->outer) && charge(ms->src, n, ms->why) < 0)
	{
		archive_set_error(a, EFBIG, "%s", *ms->why);
		return ARCHIVE_FATAL;
	}
	if (r != ARCHIVE_OK || off != ms->offset)
	{
		archive_set_error(a, EIO, "cannot read the layer from the image archive: %s",
						  r != ARCHIVE_OK ? aerr(ms->outer) : "sparse member");
		return ARCHIVE_FATAL;
	}
	ms->offset += (la_int64_t) n;
	return (la_ssize_t) n;
}

static struct archive *
outer_open(const image_src *src, char **why)
{
	struct archive *in = archive_read_new();

	archive_read_support_filter_all(in);
	archive_read_support_format_tar(in);
	if (archive_read_open_memory(in, src->data, src->len) != ARCHIVE_OK)
	{
		fail(why, -EINVAL, "image is not a tar archive: %s", aerr(in));
		archive_read_free(in);
		return NULL;
	}
	return in;
}

/*
 * Advance IN to member WANT.  0 with *link NULL: positioned at its data;
 * 0 with *link set: WANT is a link to that member; -ENOENT: absent.
 */
static int
member_seek(image_src *src, struct archive *in, const char *want, char **link, char **why)
{
	struct archive_entry *e;
	bool		counted = inflating(in);
	int			r;

	*link = NULL;
	while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)
	{
		const char *p = archive_entry_pathname(e);
		char	   *n = p ? lexical("", p, LEX_STRICT) : NULL;
		bool		match = n != NULL && strcmp(n, want) == 0;
		char	   *dir;
		char	   *slash;

		free(n);
		if (!match && counted && drain(src, in, why) < 0)
			return -EFBIG;
		if (!match)
			continue;
		if (archive_entry_hardlink(e) != NULL)
			*link = lexical("", archive_entry_hardlink(e), LEX_STRICT);
		else if (archive_entry_filetype(e) == AE_IFLNK && archive_entry_symlink(e))
		{
			dir = fx_xstrdup(want);
			slash = strrchr(dir, '/');
			*(slash ? slash : dir) = '\0';
			*link = lexical(dir, archive_entry_symlink(e), LEX_INSIDE);
			free(dir);
		}
		else if (archive_entry_filetype(e) == AE_IFREG)
			return 0;
		if (*link == NULL || **link == '\0')
		{
			free(*link);
			*link = NULL;
			return fail(why, -EINVAL, "image member \"%s\" is not a file in the archive", want);
		}
		return 0;
	}
	if (r != ARCHIVE_EOF)
		return fail(why, -EINVAL, "cannot read image archive: %s", aerr(in));
	return -ENOENT;
}

/*
 * A reader of the image archive positioned at member NAME's data,
 * following links between members (docker save links identical layers).
 */
static int
member_find(image_src *src, const char *name, struct archive **inp, char **why)
{
	char	   *want = lexical("", name, LEX_STRICT);
	char	   *link;
	struct archive *in;
	int			rc = 0;

	if (want == NULL || *want == '\0')
		rc = fail(why, -EINVAL, "image member name \"%s\" is not valid", name);
	for (int hops = 0; rc == 0; hops++)
	{
		if (hops > MAX_LINKS)
			rc = fail(why, -ELOOP, "image member \"%s\" is a chain of links", name);
		else if ((in = outer_open(src, why)) == NULL)
			rc = -EINVAL;
		else if ((rc = member_seek(src, in, want, &link, why)) == 0 && link == NULL)
		{
			*inp = in;
			break;
		}
		else
		{
			archive_read_free(in);
			free(want);
			want = link;
		}
	}
	free(want);
	if (rc == -ENOENT)
		fail(why, rc, "image archive has no member \"%s\"", name);
	return rc;
}

static int
read_member(image_src *src, const char *name, char **bufp, size_t *lenp,
			char **why)
{
	struct archive *in;
	size_t		cap = 65536;
	size_t		len = 0;
	char	   *buf;
	la_ssize_t	n;
	int			rc = member_find(src, name, &in, why);

	if (rc < 0)
		return rc;
	buf = fx_xmalloc(cap);
	while (len <= MAX_JSON &&
		   (n = archive_read_data(in, buf + len, cap - 1 - len)) > 0)
	{
		len += (size_t) n;
		if (len == cap - 1)
			buf = fx_xrealloc(buf, cap *= 2);
	}
	if (len > MAX_JSON)
		rc = fail(why, -EFBIG, "image member \"%s\" is larger than %d bytes", name, MAX_JSON);
	else if (n < 0)
		rc = fail(why, -EINVAL, "cannot read image member \"%s\": %s", name, aerr(in));
	archive_read_free(in);
	if (rc < 0)
	{
		free(buf);
		return rc;
	}
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}

static int
read_json(image_src *src, const char *name, cJSON **out, char **why)
{
	char	   *buf;
	size_t		len;
	int			rc = read_member(src, name, &buf, &len, why);

	if (rc < 0)
		return rc;
	*out = cJSON_ParseWithLength(buf, len);
	free(buf);
	if (*out == NULL)
		return fail(why, -EINVAL, "image member \"%s\" is not JSON", name);
	return 0;
}

static const cJSON *
get(const cJSON *obj, const char *key)
{
	return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/*
 * A JSON array of strings (or one string) as a NULL-terminated vector;
 * NULL for null or absent.
 */
static int
json_strv(const cJSON *item, char ***out)
{
	const cJSON *x;
	char	  **v;
	int			n = 0;

	*out = NULL;
	if (item == NULL || cJSON_IsNull(item))
		return 0;
	if (cJSON_IsString(item))
	{
		v = fx_xcalloc(2, sizeof(char *));
		v[0] = fx_xstrdup(item->valuestring);
		*out = v;
		return 0;
	}
	if (!cJSON_IsArray(item))
		return -EINVAL;
	v = fx_xcalloc((size_t) cJSON_GetArraySize(item) + 1, sizeof(char *));
	cJSON_ArrayForEach(x, item)
	{
		if (!cJSON_IsString(x))
		{
			strv_free(v);
			return -EINVAL;
		}
		v[n++] = fx_xstrdup(x->valuestring);
	}
	*out = v;
	return 0;
}

/* A JSON string, NULL for null, absent or "". */
static int
json_str(const cJSON *item, char **out)
{
	*out = NULL;
	if (item == NULL || cJSON_IsNull(item))
		return 0;
	if (!cJSON_IsString(item))
		return -EINVAL;
	if (item->valuestring[0] != '\0')
		*out = fx_xstrdup(item->valuestring);
	return 0;
}

/* The "config" object of an image config, or of our own config.json. */
static int
parse_config(const cJSON *root, fx_image *img, const char *what, char **why)
{
	const cJSON *c = get(root, "config");

	if (c == NULL || cJSON_IsNull(c))
		return 0;
	if (!cJSON_IsObject(c) ||
		json_strv(get(c, "Entrypoint"), &img->entrypoint) < 0 ||
		json_strv(get(c, "Cmd"), &img->cmd) < 0 ||
		json_strv(get(c, "Env"), &img->env) < 0 ||
		json_str(get(c, "WorkingDir"), &img->workdir) < 0 ||
		json_str(get(c, "User"), &img->user) < 0)
		return fail(why, -EINVAL, "%s has a malformed config", what);
	return 0;
}

static const char *
host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__i386__)
	return "386";
#elif defined(__arm__)
	return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#else
	return "";
#endif
}

/* The manifest for this machine in an index's list, else the first. */
static const cJSON *
pick_manifest(const cJSON *list)
{
	const cJSON *d;
	const cJSON *first = NULL;

	cJSON_ArrayForEach(d, list)
	{
		const cJSON *os = get(get(d, "platform"), "os");
		const cJSON *arch = get(get(d, "platform"), "architecture");

		if (!cJSON_IsObject(d))
			continue;
		if (first == NULL)
			first = d;
		if (cJSON_IsString(os) && strcmp(os->valuestring, "linux") == 0 &&
			cJSON_IsString(arch) && strcmp(arch->valuestring, host_arch()) == 0)
			return d;
	}
	return first;
}

/* "blobs/<algorithm>/<encoded>" for a descriptor's digest, or NULL. */
static char *
blob_name(const cJSON *desc)
{
	const cJSON *d = get(desc, "digest");
	const char *s;
	size_t		alen;

	if (!cJSON_IsString(d))
		return NULL;
	s = d->valuestring;
	alen = strspn(s, LOWER DIGIT "+._-");
	if (!isalnum((unsigned char) s[0]) || s[alen] != ':' || s[alen + 1] == '\0' ||
		strspn(s + alen + 1, LOWER UPPER DIGIT "=_-") != strlen(s + alen + 1))
		return NULL;
	return fx_xasprintf("blobs/%.*s/%s", (int) alen, s, s + alen + 1);
}

static int
docker_plan(const cJSON *doc, image_plan *plan, char **why)
{
	const cJSON *m = cJSON_IsArray(doc) ? cJSON_GetArrayItem(doc, 0) : NULL;
	const cJSON *config = get(m, "Config");

	if (!cJSON_IsString(config) || json_strv(get(m, "Layers"), &plan->layers) < 0)
		return fail(why, -EINVAL, "manifest.json is not a docker save manifest");
	plan->config = fx_xstrdup(config->valuestring);
	return 0;
}

/*
 * From *docp, index.json, through one level of nested index at most, to
 * the manifest; *docp is replaced on the way.
 */
static int
oci_plan(image_src *src, cJSON **docp, image_plan *plan, char **why)
{
	const cJSON *x;
	char	   *name;
	int			hops = 0;
	int			i = 0;
	int			rc = 0;

	while (rc == 0 && cJSON_IsArray(get(*docp, "manifests")))
	{
		name = blob_name(pick_manifest(get(*docp, "manifests")));
		if (++hops > 2)
			rc = fail(why, -EINVAL, "image indexes are nested more than one level deep");
		else if (name == NULL)
			rc = fail(why, -EINVAL, "image index lists no usable manifest");
		else
		{
			cJSON_Delete(*docp);
			*docp = NULL;
			rc = read_json(src, name, docp, why);
		}
		free(name);
	}
	if (rc == 0 && (plan->config = blob_name(get(*docp, "config"))) == NULL)
		rc = fail(why, -EINVAL, "image manifest has no config digest");
	if (rc == 0 && !cJSON_IsArray(get(*docp, "layers")))
		rc = fail(why, -EINVAL, "image manifest has no layers");
	if (rc == 0)
	{
		plan->layers = fx_xcalloc((size_t) cJSON_GetArraySize(get(*docp, "layers")) + 1,
								  sizeof(char *));
		cJSON_ArrayForEach(x, get(*docp, "layers"))
			if ((plan->layers[i++] = blob_name(x)) == NULL)
			{
				rc = fail(why, -EINVAL, "image manifest has a layer without a digest");
				break;
			}
	}
	return rc;
}

/* Which members hold the config and the layers: docker save or OCI. */
static int
read_plan(image_src *src, image_plan *plan, char **why)
{
	cJSON	   *doc = NULL;
	int			rc = read_json(src, "manifest.json", &doc, why);

	if (rc == 0)
		rc = docker_plan(doc, plan, why);
	else if (rc == -ENOENT)
	{
		free(*why);
		*why = NULL;
		rc = read_json(src, "index.json", &doc, why);
		if (rc == 0)
			rc = oci_plan(src, &doc, plan, why);
		else if (rc == -ENOENT)
		{
			free(*why);
			*why = NULL;
			rc = fail(why, rc, "image archive has neither manifest.json (docker save) nor index.json (OCI layout)");
		}
	}
	cJSON_Delete(doc);
	return rc;
}

static int
apply_layer(applier *ap, image_src *src, const char *member, char **why)
{
	struct archive *in = archive_read_new();
	struct archive_entry *e;
	member_stream ms = {NULL, 0, src, why};
	int			r = ARCHIVE_OK;
	int			rc;

	archive_read_support_filter_all(in);
	archive_read_support_format_tar(in);
	archive_read_support_format_empty(in);
	rc = member_find(src, member, &ms.outer, why);
	if (rc == 0 && archive_read_open(in, &ms, NULL, member_read, NULL) != ARCHIVE_OK)
		rc = fail(why, -EINVAL, "layer %d (\"%s\") is not a tar archive: %s",
				  ap->layer, member, aerr(in));
	if (rc == 0)
	{
		disk_open(ap);
		ap->inflating = inflating(in);
	}
	while (rc == 0 &&
		   ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN))
	{
		rc = apply_entry(ap, in, e, why);
		/* what the entry did not use (a device's, a whiteout's data) */
		if (rc == 0 && ap->inflating)
			rc = drain(src, in, why);
	}
	if (rc == 0 && r != ARCHIVE_EOF)
		rc = fail(why, -EINVAL, "cannot read layer %d (\"%s\"): %s",
				  ap->layer, member, aerr(in));
	if (disk_close(ap, why) < 0 && rc == 0)
		rc = -EIO;
	archive_read_free(in);
	if (ms.outer != NULL)
		archive_read_free(ms.outer);
	set_clear(&ap->seen);
	return rc;
}

/* A decimal id, or -1. */
static long
parse_id(const char *s)
{
	char	   *end;
	long long	v;

	if (s == NULL || !isdigit((unsigned char) *s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > 0xfffffffeLL)
		return -1;
	return (long) v;
}

/*
 * Where the link NAME in directory DIRFD leads: it sits at byte I of
 * path CUR, and REST (or NULL) follows it.  An absolute target starts
 * again at the root and ".." stops there, as for the image's processes.
 */
static int
follow_link(int dirfd, const char *name, const char *cur, size_t i,
			const char *rest, char **next)
{
	char		target[PATH_MAX];
	ssize_t		n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	char	   *dir;
	char	   *path;

	if (n < 0)
		return -errno;
	target[n] = '\0';
	dir = fx_xasprintf("%.*s", (int) (i > 0 ? i - 1 : 0), cur);
	path = fx_xasprintf("%s/%s", target, rest ? rest : "");
	*next = lexical(dir, path, LEX_CLAMP);
	free(dir);
	free(path);
	return 0;
}

/*
 * One pass over path CUR of the root file system at ROOTFD: the regular
 * file's descriptor in *fdp, or in *next the path that the first symbolic
 * link on the way leads to.
 */
static int
walk_in_root(int rootfd, const char *cur, int *fdp, char **next)
{
	int			fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	size_t		i = 0;
	int			rc = 0;

	*next = NULL;
	if (fd < 0)
		return -errno;
	for (;;)
	{
		char		name[NAME_MAX + 1];
		size_t		n = strcspn(cur + i, "/");
		bool		last = cur[i + n] == '\0';
		struct stat st;
		int			nfd;

		if (n == 0 || n > NAME_MAX)
		{
			rc = -ENOENT;
			break;
		}
		memcpy(name, cur + i, n);
		name[n] = '\0';
		if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		{
			rc = -errno;
			break;
		}
		if (S_ISLNK(st.st_mode))
		{
			rc = follow_link(fd, name, cur, i, last ? NULL : cur + i + n + 1, next);
			break;
		}
		if (last ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))
		{
			rc = -ENOENT;
			break;
		}
		nfd = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
					 (last ? 0 : O_DIRECTORY));
		if (nfd < 0)
		{
			rc = -errno;
			break;
		}
		close(fd);
		fd = nfd;
		if (last)
		{
			*fdp = fd;
			return 0;
		}
		i += n + 1;
	}
	close(fd);
	return rc;
}

static int
open_in_root(int rootfd, const char *path)
{
	char	   *cur = lexical("", path, LEX_CLAMP);
	char	   *next;
	int			fd = -1;
	int			rc;

	for (int links = 0;; links++)
	{
		rc = walk_in_root(rootfd, cur, &fd, &next);
		if (rc < 0 || next == NULL)
			break;
		free(cur);
		cur = next;
		if (links == 40)
		{
			rc = -ELOOP;
			break;
		}
	}
	free(cur);
	return rc < 0 ? rc : fd;
}

/*
 * In the image's FILE (etc/passwd or etc/group), the line named NAME, or
 * (NAME NULL) with id ID: its third and fourth fields.  -ENOENT if none.
 */
static int
db_lookup(int rootfd, const char *file, const char *name, long id,
		  long *idp, long *gidp)
{
	int			fd = open_in_root(rootfd, file);
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	int			rc = -ENOENT;

	if (fd < 0)
		return fd;
	f = fdopen(fd, "r");
	if (f == NULL)
	{
		close(fd);
		return -ENOMEM;
	}
	while (rc == -ENOENT && getline(&line, &cap, f) > 0)
	{
		char	   *p = line;
		char	   *field[4] = {NULL, NULL, NULL, NULL};

		line[strcspn(line, "\n")] = '\0';
		for (int i = 0; i < 4 && p != NULL; i++)
			field[i] = strsep(&p, ":");
		if (field[2] == NULL || parse_id(field[2]) < 0)
			continue;
		if (name ? strcmp(field[0], name) == 0 : parse_id(field[2]) == id)
		{
			*idp = parse_id(field[2]);
			*gidp = parse_id(field[3]);
			rc = 0;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

/*
 * User "uid", "name", "uid:gid", "name:group" and mixtures, as Docker
 * reads them: names from the image's /etc/passwd and /etc/group; without
 * a group, the user's primary group from /etc/passwd, else 0.
 */
static int
resolve_user(int rootfd, fx_image *img, char **why)
{
	char	   *spec;
	char	   *group;
	long		uid;
	long		gid = -1;
	long		pgid = -1;
	long		ignore;
	int			rc = 0;

	img->uid = img->gid = -1;
	if (img->user == NULL)
		return 0;
	spec = fx_xstrdup(img->user);
	group = strchr(spec, ':');
	if (group != NULL)
		*group++ = '\0';
	uid = parse_id(spec);
	if (*spec == '\0' || (group != NULL && *group == '\0'))
		rc = fail(why, -EINVAL, "image user \"%s\" is not valid", img->user);
	else if (uid >= 0)
		(void) db_lookup(rootfd, "etc/passwd", NULL, uid, &ignore, &pgid);
	else if (db_lookup(rootfd, "etc/passwd", spec, 0, &uid, &pgid) < 0)
		rc = fail(why, -ENOENT, "image user \"%s\" is not in the image's /etc/passwd", spec);
	if (rc == 0 && group != NULL && (gid = parse_id(group)) < 0 &&
		db_lookup(rootfd, "etc/group", group, 0, &gid, &ignore) < 0)
		rc = fail(why, -ENOENT, "image group \"%s\" is not in the image's /etc/group", group);
	if (rc == 0)
	{
		img->uid = uid;
		img->gid = group != NULL ? gid : pgid >= 0 ? pgid : 0;
	}
	free(spec);
	return rc;
}

/*
 * DIR/NAME.tmp-<pid>-<n>: private to this call, even when two threads of
 * one worker (uv_queue_work) unpack the same image at once.
 */
static char *
tmp_name(const char *dir, const char *name)
{
	static unsigned seq;

	return fx_xasprintf("%s/%s.tmp-%d-%u", dir, name, (int) getpid(),
						__atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
}

static cJSON *
strv_json(char **v)
{
	cJSON	   *a;

	if (v == NULL)
		return cJSON_CreateNull();
	a = cJSON_CreateArray();
	for (; *v != NULL; v++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*v));
	return a;
}

static cJSON *
str_json(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static int
write_file(const char *path, const char *text)
{
	int			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	size_t		len = strlen(text);
	size_t		off = 0;
	ssize_t		n;
	int			rc = 0;

	if (fd < 0)
		return -errno;
	while (off < len && rc == 0)
	{
		n = write(fd, text + off, len - off);
		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			off += (size_t) n;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* DIR/config.json: the image config fields and the resolved ids. */
static int
save_config(const char *dir, const fx_image *img, char **why)
{
	cJSON	   *root = cJSON_CreateObject();
	cJSON	   *c = cJSON_AddObjectToObject(root, "config");
	cJSON	   *fx = cJSON_AddObjectToObject(root, "fx");
	char	   *tmp = tmp_name(dir, "config.json");
	char	   *path = fx_xasprintf("%s/config.json", dir);
	char	   *text;
	int			rc;

	cJSON_AddItemToObject(c, "Entrypoint", strv_json(img->entrypoint));
	cJSON_AddItemToObject(c, "Cmd", strv_json(img->cmd));
	cJSON_AddItemToObject(c, "Env", strv_json(img->env));
	cJSON_AddItemToObject(c, "WorkingDir", str_json(img->workdir));
	cJSON_AddItemToObject(c, "User", str_json(img->user));
	cJSON_AddNumberToObject(fx, "uid", (double) img->uid);
	cJSON_AddNumberToObject(fx, "gid", (double) img->gid);
	text = cJSON_PrintUnformatted(root);
	if (text == NULL)
		abort();
	rc = write_file(tmp, text);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
	{
		unlink(tmp);
		fail(why, rc, "cannot write \"%s\": %s", path, strerror(-rc));
	}
	cJSON_free(text);
	cJSON_Delete(root);
	free(tmp);
	free(path);
	return rc;
}

/* A small file, NUL-terminated, or NULL. */
static char *
slurp(const char *path, size_t *lenp)
{
	int			fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char	   *buf = NULL;
	size_t		len = 0;
	ssize_t		n = 1;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MAX_JSON)
	{
		buf = fx_xmalloc((size_t) st.st_size + 1);
		while (len < (size_t) st.st_size &&
			   (n = read(fd, buf + len, (size_t) st.st_size - len)) > 0)
			len += (size_t) n;
		buf[len] = '\0';
	}
	close(fd);
	if (n < 0)
	{
		free(buf);
		return NULL;
	}
	*lenp = len;
	return buf;
}

/* A cached image: DIR/rootfs and DIR/config.json.  No message: a miss. */
static int
load_config(const char *dir, fx_image *img)
{
	char	   *path = fx_xasprintf("%s/config.json", dir);
	size_t		len;
	char	   *buf = slurp(path, &len);
	char	   *ignore = NULL;
	cJSON	   *root = NULL;
	const cJSON *fx;
	struct stat st;
	int			rc = -ENOENT;

	free(path);
	path = fx_xasprintf("%s/rootfs", dir);
	if (buf != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
		(root = cJSON_ParseWithLength(buf, len)) != NULL &&
		cJSON_IsNumber(get(fx = get(root, "fx"), "uid")) &&
		cJSON_IsNumber(get(fx, "gid")) &&
		parse_config(root, img, "config.json", &ignore) == 0)
	{
		img->uid = (long) get(fx, "uid")->valuedouble;
		img->gid = (long) get(fx, "gid")->valuedouble;
		rc = 0;
	}
	cJSON_Delete(root);
	free(ignore);
	free(buf);
	free(path);
	return rc;
}

/* Move the finished TMP to FINAL unless another worker was first. */
static int
publish(const char *tmp, const char *final, char **why)
{
	int			r = renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE);

	if (r < 0 && errno == EINVAL)	/* no RENAME_NOREPLACE here */
		r = rename(tmp, final);
	if (r == 0)
		return 0;
	if (errno == EEXIST || errno == ENOTEMPTY)
	{
		remove_at(AT_FDCWD, tmp, 0);
		return 0;
	}
	return fail(why, -errno, "cannot rename \"%s\" into place: %s", tmp, strerror(errno));
}

static unsigned long long
limit(const char *var, unsigned long long max)
{
	const char *s = getenv(var);
	char	   *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char) *s))
		return max;
	errno = 0;
	v = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0' && v > 0 && v < max ? v : max;
}

/* Build DIR/rootfs and DIR/config.json from the archive. */
static int
unpack(const char *dir, image_src *src, fx_image *img, char **why)
{
	char	   *tmp = tmp_name(dir, "rootfs");
	char	   *final = fx_xasprintf("%s/rootfs", dir);
	image_plan	plan = {NULL, NULL};
	cJSON	   *config = NULL;
	applier		ap;
	unsigned long long max_layers;
	size_t		nlayers = 0;
	int			rc = 0;

	memset(&ap, 0, sizeof(ap));
	ap.root = tmp;
	ap.max_bytes = limit("FX_IMAGE_MAX_BYTES", FX_IMAGE_MAX_BYTES);
	ap.max_entries = limit("FX_IMAGE_MAX_ENTRIES", FX_IMAGE_MAX_ENTRIES);
	ap.src = src;
	max_layers = limit("FX_IMAGE_MAX_LAYERS", FX_IMAGE_MAX_LAYERS);
	src->read = 0;
	src->ratio_read = src->len < FX_IMAGE_MIN_READ / FX_IMAGE_READ_RATIO ? FX_IMAGE_MIN_READ :
		FX_IMAGE_READ_RATIO * src->len;
	src->max_read = limit("FX_IMAGE_MAX_READ", src->ratio_read);
	remove_at(AT_FDCWD, tmp, 0);	/* left by a crashed worker with our pid */
	if (mkdir(tmp, 0700) < 0 ||
		(ap.rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
	{
		ap.rootfd = -1;
		rc = fail(why, -errno, "cannot create \"%s\": %s", tmp, strerror(errno));
	}
	if (rc == 0)
		rc = read_plan(src, &plan, why);
	while (rc == 0 && plan.layers != NULL && plan.layers[nlayers] != NULL)
		nlayers++;
	if (rc == 0 && nlayers > max_layers)
		rc = fail(why, -EFBIG, "image has more than %llu layers (%zu)", max_layers, nlayers);
	if (rc == 0)
		rc = read_json(src, plan.config, &config, why);
	if (rc == 0)
		rc = parse_config(config, img, "image config", why);
	for (int i = 0; rc == 0 && plan.layers != NULL && plan.layers[i] != NULL; i++)
	{
		ap.layer = i + 1;
		rc = apply_layer(&ap, src, plan.layers[i], why);
	}
	if (rc == 0)
		rc = resolve_user(ap.rootfd, img, why);
	if (rc == 0 && fchmod(ap.rootfd, 0755) < 0)
		rc = fail(why, -errno, "cannot chmod \"%s\": %s", tmp, strerror(errno));
	if (rc == 0)
		rc = save_config(dir, img, why);
	if (rc == 0)
		rc = publish(tmp, final, why);
	if (rc == 0)
		fx_debug("image %s: %d layers, %llu bytes in %llu entries, %llu decompressed",
				 dir, ap.layer, ap.bytes, ap.entries, src->read);
	if (ap.rootfd >= 0)
		close(ap.rootfd);
	if (rc < 0)
		remove_at(AT_FDCWD, tmp, 0);
	cJSON_Delete(config);
	free(plan.config);
	strv_free(plan.layers);
	free(tmp);
	free(final);
	return rc;
}

/* A content hash: one path component, no leading dot. */
static bool
valid_key(const char *key)
{
	size_t		n = strlen(key);

	return n > 0 && n <= 200 && key[0] != '.' &&
		strspn(key, LOWER UPPER DIGIT "._:+-") == n;
}

int
fx_image_prepare(const char *cache, const char *key, const void *data,
				 size_t len, fx_image *img, char **why)
{
	image_src	src = {data, len, 0, 0, 0};
	char	   *path;
	char	   *dir = NULL;
	int			rc;

	memset(img, 0, sizeof(*img));
	img->uid = img->gid = -1;
	*why = NULL;
	if (!valid_key(key))
		return fail(why, -EINVAL, "image key \"%s\" is not valid", key);
	path = fx_xasprintf("%s/%s", cache, key);
	rc = fx_mkdirs(path, 0755);
	if (rc < 0)
		fail(why, rc, "cannot create \"%s\": %s", path, strerror(-rc));
	else if ((dir = realpath(path, NULL)) == NULL)
		rc = fail(why, -errno, "cannot resolve \"%s\": %s", path, strerror(errno));
	free(path);
	if (rc == 0 && load_config(dir, img) < 0)
	{
		fx_image_free(img);
		if (data == NULL)
			rc = fail(why, -ENOENT, "image %s is not unpacked and no archive was given", key);
		else
			rc = unpack(dir, &src, img, why);
	}
	if (rc == 0)
		img->rootfs = fx_xasprintf("%s/rootfs", dir);
	else
		fx_image_free(img);
	free(dir);
	return rc;
}

void
fx_image_free(fx_image *img)
{
	free(img->rootfs);
	strv_free(img->entrypoint);
	strv_free(img->cmd);
	strv_free(img->env);
	free(img->workdir);
	free(img->user);
	memset(img, 0, sizeof(*img));
	img->uid = img->gid = -1;
}
