/*
 * fx_bundle.h: the worker's cache of unpacked code bundles.
 *
 * A bundle is unpacked once per content hash into CACHE/<hash>, read-only
 * afterwards; versions with the same code share it.
 */
#ifndef FX_BUNDLE_H
#define FX_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

/* CACHE/<hash>, or NULL if not unpacked yet.  Caller frees. */
char	   *fx_bundle_path(const char *cache, const char *hash);

/* Unpack a tar archive into CACHE/<hash>; 0 or -errno with *why set. */
int			fx_bundle_unpack(const char *cache, const char *hash,
							 const void *data, size_t len, char **why);

/* mkdir -p */
int			fx_mkdirs(const char *path, int mode);

#endif							/* FX_BUNDLE_H */
