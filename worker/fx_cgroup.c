/*
 * fx_cgroup.c: cgroup v1 and v2 for sandboxes.
 *
 * Layout: under the worker's own cgroup in each hierarchy, a directory
 * fx-<worker pid>, and in it sbx-<n> per sandbox.  On v2 the worker first
 * moves itself into fx-<pid>/worker, so that the directories above the
 * sandboxes hold no processes and may enable controllers for their
 * children ("no internal processes").  Everything here runs in the worker
 * process, never between clone and exec.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fx_cgroup.h"
#include "fx_log.h"

static fx_cgroup_mode mode = FX_CGROUP_NONE;
static char *base_memory;		/* fx-<pid> directories */
static char *base_pids;
static char *base_cpu;
static unsigned long next_id;

static int
write_file(const char *dir, const char *file, const char *value)
{
	char	   *path = fx_xasprintf("%s/%s", dir, file);
	int			fd = open(path, O_WRONLY | O_CLOEXEC);
	int			rc = 0;

	free(path);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static long long
read_number(const char *dir, const char *file, const char *key)
{
	char	   *path = fx_xasprintf("%s/%s", dir, file);
	FILE	   *f = fopen(path, "re");
	char		line[256];
	long long	v = -1;

	free(path);
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
	{
		if (key == NULL)
		{
			v = atoll(line);
			break;
		}
		if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ' ')
		{
			v = atoll(line + strlen(key) + 1);
			break;
		}
	}
	fclose(f);
	return v;
}

/* Is word one of the comma-separated names in list ("cpu" is not "cpuset")? */
static bool
has_word(const char *list, const char *word)
{
	size_t		n = strlen(word);

	for (const char *p = list; p; p = strchr(p, ','), p = p ? p + 1 : NULL)
		if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

/* The worker's own cgroup path in the hierarchy holding controller. */
static char *
own_path(const char *controller)
{
	FILE	   *f = fopen("/proc/self/cgroup", "re");
	char		line[4096];
	char	   *path = NULL;

	if (f == NULL)
		return NULL;
	while (path == NULL && fgets(line, sizeof(line), f))
	{
		char	   *ctrls = strchr(line, ':');
		char	   *p = ctrls ? strchr(ctrls + 1, ':') : NULL;

		if (p == NULL)
			continue;
		*p++ = '\0';
		p[strcspn(p, "\n")] = '\0';
		ctrls++;
		if (controller == NULL ? ctrls[0] == '\0' : has_word(ctrls, controller))
			path = fx_xstrdup(p);
	}
	fclose(f);
	return path;
}

/* rmdir dir and the cgroups in it (they are empty once their tasks exit). */
static void
remove_tree(const char *dir)
{
	DIR		   *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (e->d_type == DT_DIR && e->d_name[0] != '.')
		{
			char	   *sub = fx_xasprintf("%s/%s", dir, e->d_name);

			remove_tree(sub);
			free(sub);
		}
	closedir(d);
	rmdir(dir);
}

/*
 * Remove the fx-<pid> directories, beside ours in parent, of workers that
 * are gone (killed with SIGKILL, they could not clean up).  A directory
 * whose sandboxes are still exiting stays for the next worker to sweep.
 */
static void
sweep_stale(const char *parent)
{
	DIR		   *d = opendir(parent);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
	{
		int			pid;
		char		tail;

		if (sscanf(e->d_name, "fx-%d%c", &pid, &tail) != 1 || pid == getpid() ||
			pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		{
			char	   *dir = fx_xasprintf("%s/%s", parent, e->d_name);

			remove_tree(dir);
			free(dir);
		}
	}
	closedir(d);
}

/* mkdir mount/own/fx-<pid> for a v1 controller; NULL if not writable. */
static char *
v1_base(const char *controller)
{
	char	   *own = own_path(controller);
	char	   *dir;

	if (own == NULL)
		return NULL;
	dir = fx_xasprintf("/sys/fs/cgroup/%s%s", controller, strcmp(own, "/") == 0 ? "" : own);
	free(own);
	sweep_stale(dir);
	{
		char	   *mine = fx_xasprintf("%s/fx-%d", dir, (int) getpid());

		free(dir);
		dir = mine;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
	{
		free(dir);
		return NULL;
	}
	return dir;
}

static bool
init_v1(void)
{
	struct stat st;

	if (stat("/sys/fs/cgroup/memory/memory.limit_in_bytes", &st) != 0 &&
		stat("/sys/fs/cgroup/memory/cgroup.procs", &st) != 0)
		return false;
	base_memory = v1_base("memory");
	base_pids = v1_base("pids");
	base_cpu = v1_base("cpu");
	return base_memory != NULL;
}

static bool
init_v2(void)
{
	char	   *own = own_path(NULL);
	char	   *dir;
	char	   *worker;
	char		pid[32];

	if (own == NULL || access("/sys/fs/cgroup/cgroup.controllers", R_OK) != 0)
	{
		free(own);
		return false;
	}
	dir = fx_xasprintf("/sys/fs/cgroup%s", strcmp(own, "/") == 0 ? "" : own);
	sweep_stale(dir);
	free(dir);
	dir = fx_xasprintf("/sys/fs/cgroup%s/fx-%d", strcmp(own, "/") == 0 ? "" : own,
					   (int) getpid());
	worker = fx_xasprintf("%s/worker", dir);
	snprintf(pid, sizeof(pid), "%d", (int) getpid());
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) ||
		(mkdir(worker, 0755) < 0 && errno != EEXIST) ||
		write_file(worker, "cgroup.procs", pid) < 0)
	{
		rmdir(worker);
		rmdir(dir);
		free(own);
		free(dir);
		free(worker);
		return false;
	}
	{
		char	   *parent = fx_xasprintf("/sys/fs/cgroup%s", strcmp(own, "/") == 0 ? "" : own);

		/* Best effort on the parent (it may be delegated already). */
		write_file(parent, "cgroup.subtree_control", "+memory +pids +cpu");
		free(parent);
	}
	if (write_file(dir, "cgroup.subtree_control", "+memory +pids") < 0)
	{
		free(own);
		free(dir);
		free(worker);
		return false;
	}
	write_file(dir, "cgroup.subtree_control", "+cpu");
	base_memory = dir;
	free(own);
	free(worker);
	return true;
}

fx_cgroup_mode
fx_cgroup_init(void)
{
	struct stat st;
	bool		unified = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0;

	if (unified ? init_v2() : init_v1())
		mode = unified ? FX_CGROUP_V2 : FX_CGROUP_V1;
	else
		mode = FX_CGROUP_NONE;
	return mode;
}

const char *
fx_cgroup_mode_name(void)
{
	return mode == FX_CGROUP_V2 ? "cgroup v2" : mode == FX_CGROUP_V1 ? "cgroup v1" : "none";
}

static char *
sub(const char *base, unsigned long id)
{
	char	   *dir;

	if (base == NULL)
		return NULL;
	dir = fx_xasprintf("%s/sbx-%lu", base, id);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
	{
		free(dir);
		return NULL;
	}
	return dir;
}

int
fx_cgroup_create(fx_cgroup *cg)
{
	unsigned long id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);	/* thread pool too */

	memset(cg, 0, sizeof(*cg));
	cg->dirfd = -1;
	if (mode == FX_CGROUP_NONE)
		return 0;
	cg->memory = sub(base_memory, id);
	if (cg->memory == NULL)
		return -errno;
	if (mode == FX_CGROUP_V2)
	{
		cg->dirfd = open(cg->memory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		return cg->dirfd < 0 ? -errno : 0;
	}
	cg->pids = sub(base_pids, id);
	cg->cpu = sub(base_cpu, id);
	return 0;
}

int
fx_cgroup_attach(fx_cgroup *cg, pid_t pid, bool v2_too)
{
	char		s[32];
	int			rc = 0;

	if (mode == FX_CGROUP_NONE || (mode == FX_CGROUP_V2 && !v2_too))
		return 0;
	snprintf(s, sizeof(s), "%d", (int) pid);
	if (cg->memory)
		rc = write_file(cg->memory, "cgroup.procs", s);
	if (rc == 0 && cg->pids)
		rc = write_file(cg->pids, "cgroup.procs", s);
	if (rc == 0 && cg->cpu)
		rc = write_file(cg->cpu, "cgroup.procs", s);
	return rc;
}

int
fx_cgroup_limit(fx_cgroup *cg, int memory_mb, int pids, double cpu)
{
	char		v[64];
	int			rc = 0;

	if (mode == FX_CGROUP_V2 && cg->memory)
	{
		snprintf(v, sizeof(v), "%lld", (long long) memory_mb * 1024 * 1024);
		rc = write_file(cg->memory, "memory.max", v);
		write_file(cg->memory, "memory.swap.max", "0");
		snprintf(v, sizeof(v), "%d", pids);
		if (rc == 0)
			rc = write_file(cg->memory, "pids.max", v);
		snprintf(v, sizeof(v), "%ld 100000", (long) (cpu * 100000));
		write_file(cg->memory, "cpu.max", v);
		return rc;
	}
	if (mode != FX_CGROUP_V1)
		return 0;
	if (cg->memory)
	{
		snprintf(v, sizeof(v), "%lld", (long long) memory_mb * 1024 * 1024);
		rc = write_file(cg->memory, "memory.limit_in_bytes", v);
		write_file(cg->memory, "memory.memsw.limit_in_bytes", v);
	}
	if (rc == 0 && cg->pids)
	{
		snprintf(v, sizeof(v), "%d", pids);
		rc = write_file(cg->pids, "pids.max", v);
	}
	if (rc == 0 && cg->cpu)
	{
		write_file(cg->cpu, "cpu.cfs_period_us", "100000");
		snprintf(v, sizeof(v), "%ld", (long) (cpu * 100000));
		write_file(cg->cpu, "cpu.cfs_quota_us", v);
	}
	return rc;
}

void
fx_cgroup_usage_read(fx_cgroup *cg, fx_cgroup_usage *u)
{
	long long	peak = -1;

	u->peak_kb = -1;
	u->oom_killed = false;
	if (cg->memory == NULL)
		return;
	if (mode == FX_CGROUP_V2)
	{
		peak = read_number(cg->memory, "memory.peak", NULL);
		u->oom_killed = read_number(cg->memory, "memory.events", "oom_kill") > 0;
	}
	else if (mode == FX_CGROUP_V1)
	{
		peak = read_number(cg->memory, "memory.max_usage_in_bytes", NULL);
		u->oom_killed = read_number(cg->memory, "memory.oom_control", "oom_kill") > 0;
	}
	u->peak_kb = peak < 0 ? -1 : (long) (peak / 1024);
}

static void
remove_dir(char **dir)
{
	if (*dir)
	{
		/* The kernel may still be tearing down the last task: retry briefly. */
		for (int i = 0; i < 50 && rmdir(*dir) < 0 && errno == EBUSY; i++)
			usleep(200);
		free(*dir);
		*dir = NULL;
	}
}

void
fx_cgroup_destroy(fx_cgroup *cg)
{
	if (cg->dirfd >= 0)
		close(cg->dirfd);
	cg->dirfd = -1;
	remove_dir(&cg->memory);
	remove_dir(&cg->pids);
	remove_dir(&cg->cpu);
}

void
fx_cgroup_shutdown(void)
{
	/* The sandboxes' directories are gone; remove ours (v1: empty now). */
	if (mode == FX_CGROUP_V1)
	{
		remove_dir(&base_memory);
		remove_dir(&base_pids);
		remove_dir(&base_cpu);
	}
	mode = FX_CGROUP_NONE;
}
