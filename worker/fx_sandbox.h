/*
 * fx_sandbox.h: the container every function runs in, built by the worker.
 *
 * A sandbox is a process in new user, PID, mount, UTS, IPC, network and
 * cgroup namespaces, in a cgroup of its own, that waits for a launch: then
 * it builds a read-only root (the host's /usr, or an image's root file
 * system), with the function's bundle read-only at /fn, a size-capped /tmp,
 * its own /proc and a minimal /dev, the function's secrets as files in a
 * read-only tmpfs at /run/secrets (only if it has some), and runs the
 * function as an unprivileged user (never uid 0, inside or on the host)
 * with no capabilities, no_new_privs and a seccomp filter.  Creating
 * the namespaces, the cgroup and the user mapping (the slow part) happens
 * ahead of time in a pool of "stems" filled from libuv's thread pool, so
 * that a launch only mounts and executes.
 *
 * Inside, PID 1 is a small reaper (fx code, no exec) and the function is
 * its child: the reaper reaps orphans and reports the function's wait
 * status; when the function exits the reaper exits, and the kernel kills
 * whatever is left in the PID namespace.
 */
#ifndef FX_SANDBOX_H
#define FX_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#include <uv.h>

#include "fx_cgroup.h"

typedef struct fx_stem fx_stem;

typedef struct fx_sandbox_config
{
	const char *stage_dir;		/* an empty directory to build roots on */
	int			prewarm;		/* stems kept ready */
} fx_sandbox_config;

typedef struct fx_launch
{
	const char *bundle_dir;		/* host path, mounted read-only at /fn */
	const char *rootfs;			/* image root file system; NULL: host /usr */
	const char *workdir;		/* NULL: /fn */
	char	  **argv;
	char	  **envp;
	bool		session;		/* the protocol socket becomes fd 3 */
	bool		net;			/* outbound network through slirp4netns */
	int			memory_mb;
	int			pids;
	int			tmp_mb;
	double		cpu;
	long		uid;			/* inside; -1: the default (1000); never 0 */
	long		gid;
	const struct fx_secrets *secrets;	/* files in /run/secrets; NULL: none */
} fx_launch;

/* A launched sandbox: the parent's ends of its pipes and its PID 1. */
typedef struct fx_sandboxed
{
	pid_t		pid;
	int			pidfd;
	int			in;				/* function's stdin */
	int			out;
	int			err;
	int			sock;			/* protocol socket (session mode) */
	fx_stem    *stem;
	bool		prewarmed;
} fx_sandboxed;

int			fx_sandbox_init(uv_loop_t *loop, const fx_sandbox_config *cfg, char **why);
void		fx_sandbox_shutdown(void);

/* Launch; 0 or -errno with *why (e.g. the program cannot be executed). */
int			fx_sandbox_launch(const fx_launch *l, fx_sandboxed *out, char **why);

/*
 * After the sandbox's PID 1 was reaped with wait status *status: replace
 * it with the function's own status when the reaper reported one, read the
 * cgroup's accounting, remove the cgroup and free the stem.
 */
void		fx_sandbox_done(fx_stem *stem, int *status, fx_cgroup_usage *usage);

#endif							/* FX_SANDBOX_H */
