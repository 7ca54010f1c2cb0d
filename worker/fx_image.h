/*
 * fx_image.h: container images, unpacked without a container engine.
 *
 * An image archive is `docker save` output or an OCI image layout packed
 * as a tar.  It is unpacked once per content key into CACHE/<key>/rootfs
 * (layers applied in order, whiteouts honoured) and the parts of its
 * config the worker needs are kept in CACHE/<key>/config.json, so a later
 * call with the same key reads neither.  Both are read-only afterwards.
 */
#ifndef FX_IMAGE_H
#define FX_IMAGE_H

#include <stddef.h>

typedef struct fx_image
{
	char	   *rootfs;			/* absolute path of the unpacked root file
								 * system */
	char	  **entrypoint;		/* NULL-terminated, may be NULL */
	char	  **cmd;			/* NULL-terminated, may be NULL */
	char	  **env;			/* NULL-terminated "K=V" list, may be NULL */
	char	   *workdir;		/* NULL if unset */
	char	   *user;			/* config User as given, NULL if unset */
	long		uid,
				gid;			/* resolved numeric ids, -1 if unset */
} fx_image;

/*
 * Limits on what one image may unpack to; the environment variables
 * FX_IMAGE_MAX_BYTES, FX_IMAGE_MAX_ENTRIES, FX_IMAGE_MAX_LAYERS and
 * FX_IMAGE_MAX_READ lower them (for tests).  MAX_BYTES bounds the files
 * written, MAX_READ the bytes decompressed on the way, all passes over the
 * archive together (each member is found by reading the archive from its
 * start): FX_IMAGE_READ_RATIO times the archive's size, at least
 * FX_IMAGE_MIN_READ, so that a compression bomb (a small archive of
 * gigabytes of zeros, listed as many layers) is refused within a second.
 */
#define FX_IMAGE_MAX_BYTES		(4ULL << 30)
#define FX_IMAGE_MAX_ENTRIES	1000000ULL
#define FX_IMAGE_MAX_LAYERS		128ULL
#define FX_IMAGE_READ_RATIO		100ULL
#define FX_IMAGE_MIN_READ		(256ULL << 20)

/*
 * Unpack the image archive (DATA, LEN bytes in memory) into CACHE/<key>/
 * unless already there, and fill *img.  KEY is a content hash given by
 * the caller; DATA may be NULL when the key is cached.  0, or -errno with
 * *why set (malloc'd) and *img left empty.  Blocks for as long as the
 * unpacking takes: run it off the event loop (uv_queue_work).
 */
int			fx_image_prepare(const char *cache, const char *key,
							 const void *data, size_t len, fx_image *img,
							 char **why);

void		fx_image_free(fx_image *img);

#endif							/* FX_IMAGE_H */
