/*
 * fx_bundle.c: unpack code bundles with libarchive.
 *
 * Unpacking goes to a private temporary directory that is renamed into
 * place, so a reader never sees half a bundle and two workers unpacking the
 * same hash do not collide.  libarchive's secure-extraction flags refuse
 * ".." and writes through symbolic links; members are checked here too
 * (fx_deploy already refused them): no absolute paths, no "..", no hard
 * links, no links pointing out, no special files.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "fx_bundle.h"
#include "fx_log.h"

/*
 * The bundles found last, and when.  Every invocation asks, and those of a
 * warm function come one after another: a stat of the bundle's path for
 * each was 6% of the worker's time.  One found is taken as there for a
 * second; so one removed from the cache behind the worker's back is
 * fetched again a second later at most.  The loop's thread only.
 */
#define SEEN_SLOTS 8
#define SEEN_NS 1000000000ULL

static struct
{
	char	   *path;
	uint64_t	at_ns;
}			seen[SEEN_SLOTS];
static int	seen_next;

char *
fx_bundle_path(const char *cache, const char *hash)
{
	char	   *path = fx_xasprintf("%s/%s", cache, hash);
	uint64_t	now = fx_mono_ns();
	struct stat st;
	int			slot = -1;

	for (int i = 0; i < SEEN_SLOTS && slot < 0; i++)
		if (seen[i].path && strcmp(seen[i].path, path) == 0)
			slot = i;
	if (slot >= 0 && now - seen[slot].at_ns < SEEN_NS)
		return path;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
	{
		if (slot < 0)
		{
			slot = seen_next;
			seen_next = (seen_next + 1) % SEEN_SLOTS;
			free(seen[slot].path);
			seen[slot].path = fx_xstrdup(path);
		}
		seen[slot].at_ns = now;
		return path;
	}
	free(path);
	return NULL;
}

int
fx_mkdirs(const char *path, int mode)
{
	char	   *p = fx_xstrdup(path);
	int			r = 0;

	for (char *s = p + 1; *s && r == 0; s++)
		if (*s == '/')
		{
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST)
				r = -errno;
			*s = '/';
		}
	if (r == 0 && mkdir(p, mode) < 0 && errno != EEXIST)
		r = -errno;
	free(p);
	return r;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void) st;
	(void) flag;
	(void) ftw;
	return remove(path);
}

static void
remove_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* An absolute path, or one with a ".." component. */
static bool
escapes(const char *path)
{
	const char *p = path;

	if (path == NULL || *p == '/')
		return true;
	for (;;)
	{
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return true;
		p = strchr(p, '/');
		if (p == NULL)
			return false;
		p++;
	}
}

static int
extract(struct archive *in, const char *dir, char **why)
{
	struct archive *out = archive_write_disk_new();
	struct archive_entry *e;
	int			r;
	int			rc = 0;

	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
								   ARCHIVE_EXTRACT_SECURE_NODOTDOT |
								   ARCHIVE_EXTRACT_SECURE_SYMLINKS);
	while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK)
	{
		char	   *target = fx_xasprintf("%s/%s", dir, archive_entry_pathname(e));
		const void *buf;
		size_t		n;
		la_int64_t	off;
		mode_t		type = archive_entry_filetype(e);

		if (escapes(archive_entry_pathname(e)) || archive_entry_hardlink(e) ||
			(type == AE_IFLNK && escapes(archive_entry_symlink(e))))
		{
			*why = fx_xasprintf("bundle member \"%s\" points outside the bundle",
								archive_entry_pathname(e));
			free(target);
			rc = -EINVAL;
			break;
		}
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
		{
			*why = fx_xasprintf("bundle member \"%s\" is not a file, directory or link",
								archive_entry_pathname(e));
			free(target);
			rc = -EINVAL;
			break;
		}
		archive_entry_set_pathname(e, target);
		archive_entry_set_uid(e, getuid());
		archive_entry_set_gid(e, getgid());
		free(target);
		if (archive_write_header(out, e) != ARCHIVE_OK)
		{
			*why = fx_xasprintf("cannot unpack bundle: %s", archive_error_string(out));
			rc = -EINVAL;
			break;
		}
		while ((r = archive_read_data_block(in, &buf, &n, &off)) == ARCHIVE_OK)
			if (archive_write_data_block(out, buf, n, off) != ARCHIVE_OK)
				break;
		if (r != ARCHIVE_EOF || archive_write_finish_entry(out) != ARCHIVE_OK)
		{
			*why = fx_xasprintf("cannot unpack bundle: %s", archive_error_string(out));
			rc = -EIO;
			break;
		}
	}
	if (rc == 0 && r != ARCHIVE_EOF)
	{
		*why = fx_xasprintf("bad bundle archive: %s", archive_error_string(in));
		rc = -EINVAL;
	}
	archive_write_free(out);
	return rc;
}

int
fx_bundle_unpack(const char *cache, const char *hash, const void *data,
				 size_t len, char **why)
{
	char	   *final = fx_xasprintf("%s/%s", cache, hash);
	char	   *tmp = fx_xasprintf("%s/.tmp-%s-%d", cache, hash, (int) getpid());
	struct archive *in = archive_read_new();
	int			rc;

	remove_tree(tmp);
	rc = fx_mkdirs(tmp, 0755);
	if (rc < 0)
		*why = fx_xasprintf("cannot create \"%s\": %s", tmp, strerror(-rc));
	else
	{
		archive_read_support_filter_all(in);
		archive_read_support_format_tar(in);
		archive_read_support_format_gnutar(in);
		if (archive_read_open_memory(in, data, len) != ARCHIVE_OK)
		{
			*why = fx_xasprintf("bad bundle archive: %s", archive_error_string(in));
			rc = -EINVAL;
		}
		else
			rc = extract(in, tmp, why);
	}
	archive_read_free(in);
	if (rc == 0)
	{
		chmod(tmp, 0755);
		if (rename(tmp, final) < 0)
		{
			if (errno != EEXIST && errno != ENOTEMPTY)
			{
				*why = fx_xasprintf("cannot rename bundle into place: %s", strerror(errno));
				rc = -errno;
			}
			remove_tree(tmp);	/* another worker was first */
		}
	}
	else
		remove_tree(tmp);
	free(tmp);
	free(final);
	return rc;
}
