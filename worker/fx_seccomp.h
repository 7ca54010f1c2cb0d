/*
 * fx_seccomp.h: the seccomp filter every sandboxed function runs under.
 */
#ifndef FX_SECCOMP_H
#define FX_SECCOMP_H

#include <linux/filter.h>

/* Build the filter once; 0 or -errno with *why. */
int			fx_seccomp_build(struct sock_fprog *prog, char **why);

#endif							/* FX_SECCOMP_H */
