/*
 * fx_cgroup.h: per-sandbox resource limits and accounting.
 *
 * fx_cgroup_init() finds what this host offers: cgroup v2 (a unified
 * hierarchy where the worker can enable memory, pids and cpu for a subtree
 * of its own), cgroup v1 (memory, pids and cpu hierarchies where the worker
 * can create children of its own cgroups), or nothing writable (then
 * sandboxes run without cgroup limits; the worker says so once).
 */
#ifndef FX_CGROUP_H
#define FX_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

typedef enum fx_cgroup_mode
{
	FX_CGROUP_NONE,
	FX_CGROUP_V1,
	FX_CGROUP_V2
} fx_cgroup_mode;

/* One sandbox's cgroup: a directory per hierarchy (v1) or one (v2). */
typedef struct fx_cgroup
{
	char	   *memory;			/* v2: the only directory */
	char	   *pids;
	char	   *cpu;
	int			dirfd;			/* v2: for CLONE_INTO_CGROUP, else -1 */
} fx_cgroup;

typedef struct fx_cgroup_usage
{
	long		peak_kb;		/* -1 if unknown */
	bool		oom_killed;
} fx_cgroup_usage;

fx_cgroup_mode fx_cgroup_init(void);
const char *fx_cgroup_mode_name(void);

/* Create a sandbox's cgroup (empty, no limits yet); 0 or -errno. */
int			fx_cgroup_create(fx_cgroup *cg);

/* Move pid into it (v1; on v2 only if v2_too: CLONE_INTO_CGROUP is used). */
int			fx_cgroup_attach(fx_cgroup *cg, pid_t pid, bool v2_too);

/* Set the limits; cpu is a number of CPUs. */
int			fx_cgroup_limit(fx_cgroup *cg, int memory_mb, int pids, double cpu);

void		fx_cgroup_usage_read(fx_cgroup *cg, fx_cgroup_usage *u);

/* Remove it (its processes must be gone). */
void		fx_cgroup_destroy(fx_cgroup *cg);

/* Remove the worker's own directories (v1) at exit. */
void		fx_cgroup_shutdown(void);

#endif							/* FX_CGROUP_H */
