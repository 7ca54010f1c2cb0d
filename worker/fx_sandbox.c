/*
 * fx_sandbox.c: stems (prewarmed sandboxes) and launches.
 *
 * Parent side (worker, or a libuv thread-pool thread for prewarming):
 * create the pipes and the cgroup, clone3 with every namespace flag and a
 * pidfd, write the user mapping, attach the cgroup (v1; v2 clones straight
 * into it).  The stem then waits on its "go" pipe.  A launch sets the
 * cgroup limits, writes the launch description to the go pipe, and reads
 * the exec-error pipe: end of file means the function is running.
 *
 * Child side (everything after clone until execve): async-signal-safe
 * system calls only, no malloc, no stdio; errors go to the exec-error pipe
 * as (step, errno) and the child exits with 127.  The child's file
 * descriptors are moved to fixed numbers first and everything else is
 * closed, so that a stem never holds another sandbox's pipes open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <poll.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fx_bundle.h"
#include "fx_log.h"
#include "fx_proc.h"
#include "fx_sandbox.h"
#include "fx_seccomp.h"
#include "fx_secret.h"

/* Fixed descriptor numbers in the child. */
enum
{
	FD_IN = 10, FD_OUT, FD_ERR, FD_SOCK, FD_GO, FD_EXEC, FD_STATUS, FD_LAST
};

#define GO_MAX (256 * 1024)		/* a launch description */
#define GO_MAXV 1024			/* argv + envp entries */
#define ROOT_UID_BASE 100000	/* root worker: uids 0..65535 inside map here */
#define DEFAULT_UID 1000

/* Steps of the child, reported with errno on failure. */
enum step
{
	STEP_FDS, STEP_GO, STEP_IDS, STEP_MOUNT_ROOT, STEP_MOUNT_USR, STEP_MOUNT_FN,
	STEP_MOUNT_TMP, STEP_MOUNT_PROC, STEP_MOUNT_DEV, STEP_ETC, STEP_PIVOT,
	STEP_FORK, STEP_PRIVS, STEP_SECCOMP, STEP_SECRETS, STEP_NOT_ROOT, STEP_CHDIR, STEP_EXEC
};

static const char *const step_names[] = {
	"set up file descriptors", "receive the launch", "set user ids",
	"mount the root", "mount /usr", "mount the bundle at /fn", "mount /tmp",
	"mount /proc", "set up /dev", "write /etc", "enter the new root",
	"start the function", "drop privileges", "load the seccomp filter",
	"write /run/secrets", "run the function as a user other than root",
	"enter the working directory", "execute the command"
};

/* The launch description sent down the go pipe. */
typedef struct go_header
{
	uint32_t	len;			/* of the whole message */
	uint32_t	session;
	uint32_t	uid;
	uint32_t	gid;
	uint32_t	tmp_mb;
	uint32_t	argc;
	uint32_t	envc;
	uint32_t	net;
	uint32_t	nsecrets;
	uint32_t	secrets_kb;		/* size of the /run tmpfs holding them */
	/* then: bundle_dir, rootfs ("" = host), workdir, argv..., envp..., NULs */
	/* then, nsecrets times: secret_header, name, value (no NULs) */
} go_header;

typedef struct secret_header
{
	uint32_t	name_len;
	uint32_t	value_len;
} secret_header;

struct fx_stem
{
	pid_t		pid;
	int			pidfd;
	int			in;
	int			out;
	int			err;
	int			sock;
	int			go;				/* write end */
	int			exec_err;		/* read end */
	int			status;			/* read end */
	pid_t		net_pid;		/* slirp4netns serving its network, or 0 */
	int			net_exit;		/* closing it stops slirp4netns */
	fx_cgroup	cg;
	bool		cg_attach;		/* v2 without CLONE_INTO_CGROUP: attach by pid */
	fx_stem    *next;
};

static struct
{
	uv_loop_t  *loop;
	char	   *stage;
	int			prewarm;
	struct sock_fprog seccomp;
	uid_t		uid;			/* the worker's */
	gid_t		gid;
	fx_stem    *pool;
	int			npool;
	int			filling;		/* stems being made in the thread pool */
	bool		shutdown;
} sb;

/* ---------------------------------------------------------------------
 * Child side: async-signal-safe only
 * --------------------------------------------------------------------- */

static char go_buf[GO_MAX];
static char *go_argv[GO_MAXV];
static char *go_envp[GO_MAXV];
static char path_buf[4096];
static char secret_path[sizeof("/run/secrets/") + FX_SECRET_MAX_NAME];
static char secret_chunk[16384];
static char id_map[4096];

static void __attribute__((noreturn))
child_fail(enum step step)
{
	int			msg[2] = {(int) step, errno};

	(void) !write(FD_EXEC, msg, sizeof(msg));
	_exit(127);
}

static size_t
str_len(const char *s)
{
	size_t		n = 0;

	while (s[n])
		n++;
	return n;
}

/* dst = a + b, in a static buffer. */
static char *
join(char *dst, size_t cap, const char *a, const char *b)
{
	size_t		la = str_len(a),
				lb = str_len(b);

	if (la + lb + 1 > cap)
		return NULL;
	memcpy(dst, a, la);
	memcpy(dst + la, b, lb + 1);
	return dst;
}

static void
move_fds(const int fds[FD_LAST - FD_IN])
{
	int			tmp[FD_LAST - FD_IN];

	for (int i = 0; i < FD_LAST - FD_IN; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100)) < 0)
			_exit(127);
	for (int i = 0; i < FD_LAST - FD_IN; i++)
		if (dup3(tmp[i], FD_IN + i, O_CLOEXEC) < 0)
			_exit(127);
	syscall(SYS_close_range, FD_LAST, ~0U, 0);
	syscall(SYS_close_range, 0, FD_IN - 1, 0);
}

static ssize_t
read_full(int fd, char *buf, size_t n)
{
	size_t		got = 0;

	while (got < n)
	{
		ssize_t		r = read(fd, buf + got, n - got);

		if (r == 0)
			return got;
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0)
			got += r;
	}
	return got;
}

/* Receive the launch; split it into static argv/envp arrays. */
static go_header *
receive_go(const char **bundle, const char **rootfs, const char **workdir)
{
	go_header  *h = (go_header *) go_buf;
	ssize_t		n = read_full(FD_GO, go_buf, sizeof(go_header));
	char	   *p;

	if (n == 0)
		_exit(0);				/* the stem was discarded */
	if (n != sizeof(go_header) || h->len > GO_MAX || h->len < sizeof(go_header) ||
		h->argc + h->envc + 2 > GO_MAXV ||
		read_full(FD_GO, go_buf + sizeof(go_header), h->len - sizeof(go_header)) !=
		(ssize_t) (h->len - sizeof(go_header)))
	{
		errno = EPROTO;
		child_fail(STEP_GO);
	}
	p = go_buf + sizeof(go_header);
	*bundle = p;
	p += str_len(p) + 1;
	*rootfs = p;
	p += str_len(p) + 1;
	*workdir = p;
	p += str_len(p) + 1;
	for (uint32_t i = 0; i < h->argc; i++, p += str_len(p) + 1)
		go_argv[i] = p;
	go_argv[h->argc] = NULL;
	for (uint32_t i = 0; i < h->envc; i++, p += str_len(p) + 1)
		go_envp[i] = p;
	go_envp[h->envc] = NULL;
	return h;
}

/* "size=<n>m,mode=1777" without snprintf (not async-signal-safe). */
static void
tmp_options(char *buf, uint32_t mb)
{
	char		digits[16];
	int			n = 0;
	char	   *p = buf;

	do
		digits[n++] = (char) ('0' + mb % 10);
	while ((mb /= 10) > 0 && n < 15);
	p = stpcpy(p, "size=");
	while (n > 0)
		*p++ = digits[--n];
	stpcpy(p, "m,mode=1777");
}

/* The decimal digits of v at p, NUL-terminated; returns the NUL. */
static char *
put_uint(char *p, uint32_t v)
{
	char		digits[16];
	int			n = 0;

	do
		digits[n++] = (char) ('0' + v % 10);
	while ((v /= 10) > 0 && n < 15);
	while (n > 0)
		*p++ = digits[--n];
	*p = '\0';
	return p;
}

static void
must_mount(enum step step, const char *src, const char *dst, const char *type,
		   unsigned long flags, const char *data)
{
	if (mount(src, dst, type, flags, data) < 0)
		child_fail(step);
}

/* Bind src at dst, then make that mount read-only (and nosuid, nodev). */
static void
bind_ro(enum step step, const char *src, const char *dst)
{
	must_mount(step, src, dst, "", MS_BIND | MS_REC, NULL);
	must_mount(step, "none", dst, "",
			   MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

static void
write_text(const char *path, const char *text)
{
	int			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, text, str_len(text)) < 0)
		child_fail(STEP_ETC);
	close(fd);
}

static void
make_dev(void)
{
	static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty", NULL};
	char		host[64];
	char		mine[64];

	must_mount(STEP_MOUNT_DEV, "fx", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
			   "size=64k,mode=755");
	for (int i = 0; nodes[i]; i++)
	{
		int			fd;

		join(host, sizeof(host), "/dev/", nodes[i]);
		join(mine, sizeof(mine), "dev/", nodes[i]);
		fd = open(mine, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
		if (fd < 0)
			child_fail(STEP_MOUNT_DEV);
		close(fd);
		must_mount(STEP_MOUNT_DEV, host, mine, "", MS_BIND, NULL);
	}
	if (symlink("/proc/self/fd", "dev/fd") < 0 ||
		symlink("/proc/self/fd/0", "dev/stdin") < 0 ||
		symlink("/proc/self/fd/1", "dev/stdout") < 0 ||
		symlink("/proc/self/fd/2", "dev/stderr") < 0 ||
		mkdir("dev/shm", 01777) < 0 || chmod("dev/shm", 01777) < 0)	/* umask */
		child_fail(STEP_MOUNT_DEV);
}

/* The host layout: /usr of the host and the usual links, a tiny /etc. */
static void
host_root(void)
{
	static const char *const dirs[] = {"usr", "fn", "tmp", "proc", "dev", "etc", NULL};

	for (int i = 0; dirs[i]; i++)
		if (mkdir(dirs[i], 0755) < 0)
			child_fail(STEP_MOUNT_ROOT);
	if (symlink("usr/bin", "bin") < 0 || symlink("usr/sbin", "sbin") < 0 ||
		symlink("usr/lib", "lib") < 0 || symlink("usr/lib64", "lib64") < 0)
		child_fail(STEP_MOUNT_ROOT);
	bind_ro(STEP_MOUNT_USR, "/usr", "usr");
	write_text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
			   "fx:x:1000:1000:fx function:/tmp:/bin/sh\n"
			   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
	write_text("etc/group", "root:x:0:\nfx:x:1000:\nnogroup:x:65534:\n");
	write_text("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
	write_text("etc/hostname", "fx\n");
	write_text("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n");
	/* Debian's alternatives (e.g. /usr/bin/awk) are links through /etc. */
	if (mkdir("etc/alternatives", 0755) < 0)
		child_fail(STEP_ETC);
	bind_ro(STEP_ETC, "/etc/alternatives", "etc/alternatives");
}

/*
 * Before the launch (prewarming): the host layout on a tmpfs at the stage
 * directory, with /usr, /etc, /proc and /dev; nothing here depends on the
 * function.
 */
static void
prepare_root(void)
{
	must_mount(STEP_MOUNT_ROOT, "none", "/", "", MS_REC | MS_PRIVATE, NULL);
	must_mount(STEP_MOUNT_ROOT, "fx", sb.stage, "tmpfs", MS_NOSUID | MS_NODEV,
			   "size=1m,mode=755");
	if (chdir(sb.stage) < 0)
		child_fail(STEP_MOUNT_ROOT);
	host_root();
	if (mkdir(".image", 0755) < 0)
		child_fail(STEP_MOUNT_ROOT);
	/* hidepid: the function (another uid) cannot see PID 1, the reaper. */
	must_mount(STEP_MOUNT_PROC, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			   "hidepid=invisible");
	make_dev();
}

/* After the launch: what depends on the function, then enter the root. */
static void
finish_root(const char *bundle, const char *rootfs, uint32_t tmp_mb, bool net,
			bool secrets)
{
	char		opts[64];

	if (rootfs[0])
	{
		/* An image's own root instead of the prepared one. */
		must_mount(STEP_MOUNT_ROOT, rootfs, ".image", "", MS_BIND | MS_REC, NULL);
		if (chdir(".image") < 0)
			child_fail(STEP_MOUNT_ROOT);
		must_mount(STEP_MOUNT_PROC, "proc", "proc", "proc",
				   MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible");
		make_dev();
	}
	else
	{
		if (rmdir(".image") < 0)	/* unused: leave no trace of it */
			child_fail(STEP_MOUNT_ROOT);
		if (net)
			write_text("etc/resolv.conf", "nameserver 10.0.2.3\n");
		if (secrets && mkdir("run", 0755) < 0)	/* an image has its own */
			child_fail(STEP_SECRETS);
		bind_ro(STEP_MOUNT_FN, bundle, "fn");
	}
	tmp_options(opts, tmp_mb ? tmp_mb : 1);
	must_mount(STEP_MOUNT_TMP, "fx", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts);
	if (syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		child_fail(STEP_PIVOT);
	must_mount(STEP_PIVOT, "none", "/", "",
			   MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
	sethostname("fx", 2);
}

static void
drop_privileges(uid_t uid, gid_t gid)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	struct rlimit nofile = {1024, 1024};
	struct rlimit core = {0, 0};

	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(STEP_PRIVS);
	syscall(SYS_setrlimit, RLIMIT_NOFILE, &nofile);
	syscall(SYS_setrlimit, RLIMIT_CORE, &core);
	if (syscall(SYS_setresgid, gid, gid, gid) < 0 || syscall(SYS_setresuid, uid, uid, uid) < 0)
		child_fail(STEP_PRIVS);
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		child_fail(STEP_PRIVS);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(STEP_PRIVS);
	fx_proc_batch_policy();
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sb.seccomp) < 0)
		child_fail(STEP_SECCOMP);
}

static void __attribute__((noreturn))
secrets_fail(void)
{
	int			e = errno;

	memset(secret_chunk, 0, sizeof(secret_chunk));
	errno = e;
	child_fail(STEP_SECRETS);
}

static int
write_full(int fd, const char *buf, size_t n)
{
	while (n > 0)
	{
		ssize_t		w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t) w;
	}
	return 0;
}

/* A name from the go pipe: what fx_secret_name_ok allows, so no "/". */
static bool
secret_name_ok(const char *name, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
	{
		char		c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
			  (i > 0 && ((c >= '0' && c <= '9') || c == '.' || c == '-'))))
			return false;
	}
	return len > 0;
}

/* One secret from the go pipe into /run/secrets/NAME, 0400, the function's. */
static void
write_secret(uint32_t uid, uint32_t gid)
{
	secret_header sh;
	char	   *name = secret_path + sizeof("/run/secrets/") - 1;
	int			fd;

	if (read_full(FD_GO, (char *) &sh, sizeof(sh)) != (ssize_t) sizeof(sh) ||
		sh.name_len == 0 || sh.name_len > FX_SECRET_MAX_NAME ||
		sh.value_len > FX_SECRET_MAX_VALUE ||
		read_full(FD_GO, name, sh.name_len) != (ssize_t) sh.name_len)
	{
		errno = EPROTO;
		secrets_fail();
	}
	name[sh.name_len] = '\0';
	if (!secret_name_ok(name, sh.name_len))
	{
		errno = EINVAL;
		secrets_fail();
	}
	fd = open(secret_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		secrets_fail();
	for (uint32_t left = sh.value_len; left > 0;)
	{
		size_t		n = left < sizeof(secret_chunk) ? left : sizeof(secret_chunk);

		if (read_full(FD_GO, secret_chunk, n) != (ssize_t) n)
		{
			errno = EPROTO;
			secrets_fail();
		}
		if (write_full(fd, secret_chunk, n) < 0)
			secrets_fail();
		left -= (uint32_t) n;
	}
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, 0400) < 0)
		secrets_fail();
	close(fd);
}

/*
 * The function's secrets, read from the go pipe: a tmpfs of their size
 * at /run (in this mount namespace only, so nothing of them is on a host
 * path), /run/secrets 0500 and each file 0400, owned by the function's
 * uid, then the whole mount read-only.
 */
static void
mount_secrets(const go_header *h)
{
	char		opts[96];
	char	   *p = opts;

	p = stpcpy(p, "size=");
	p = put_uint(p, h->secrets_kb);
	p = stpcpy(p, "k,nr_inodes=");
	p = put_uint(p, h->nsecrets + 8);
	stpcpy(p, ",mode=755");
	must_mount(STEP_SECRETS, "fx", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts);
	if (mkdir("/run/secrets", 0700) < 0)
		child_fail(STEP_SECRETS);
	memcpy(secret_path, "/run/secrets/", sizeof("/run/secrets/"));
	for (uint32_t i = 0; i < h->nsecrets; i++)
		write_secret(h->uid, h->gid);
	memset(secret_chunk, 0, sizeof(secret_chunk));
	if (chown("/run/secrets", h->uid, h->gid) < 0 || chmod("/run/secrets", 0500) < 0)
		child_fail(STEP_SECRETS);
	must_mount(STEP_SECRETS, "none", "/run", "",
			   MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* Parse one unsigned number at *p, skipping blanks before it. */
static bool
parse_uint(const char **p, unsigned long *v)
{
	const char *s = *p;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s < '0' || *s > '9')
		return false;
	for (*v = 0; *s >= '0' && *s <= '9'; s++)
		*v = *v * 10 + (unsigned long) (*s - '0');
	*p = s;
	return true;
}

/* The host id that id maps to by map_file (/proc/self/uid_map), or 0. */
static unsigned long
host_id(const char *map_file, unsigned long id)
{
	int			fd = open(map_file, O_RDONLY | O_CLOEXEC);
	ssize_t		n;
	const char *p = id_map;

	if (fd < 0)
		return 0;
	n = read_full(fd, id_map, sizeof(id_map) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	id_map[n] = '\0';
	while (*p)
	{
		unsigned long inside,
					outside,
					count;

		if (!parse_uint(&p, &inside) || !parse_uint(&p, &outside) || !parse_uint(&p, &count))
			return 0;
		if (id >= inside && id - inside < count)
			return outside + (id - inside);
		while (*p == ' ' || *p == '\n')
			p++;
	}
	return 0;
}

/*
 * Right before the exec: the function is not root, neither in the sandbox
 * (every uid and gid it holds) nor on the host (what its ids map to).
 * Configuration cannot make it so (fx_sandbox_launch checks too); this is
 * defence in depth.
 */
static void
check_not_root(void)
{
	uid_t		r,
				e,
				s;
	gid_t		gr,
				ge,
				gs;

	if (syscall(SYS_getresuid, &r, &e, &s) < 0 || syscall(SYS_getresgid, &gr, &ge, &gs) < 0)
		child_fail(STEP_NOT_ROOT);
	if (r == 0 || e == 0 || s == 0 || gr == 0 || ge == 0 || gs == 0 ||
		host_id("/proc/self/uid_map", e) == 0 || host_id("/proc/self/gid_map", ge) == 0)
	{
		errno = EPERM;
		child_fail(STEP_NOT_ROOT);
	}
}

/* execvpe without malloc: PATH from the function's environment. */
static void
exec_function(void)
{
	const char *prog = go_argv[0];
	const char *path = "/usr/local/bin:/usr/bin:/bin";

	if (strchr(prog, '/'))
	{
		execve(prog, go_argv, go_envp);
		child_fail(STEP_EXEC);
	}
	for (char **e = go_envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	while (*path)
	{
		size_t		len = strcspn(path, ":");

		if (len + str_len(prog) + 2 < sizeof(path_buf))
		{
			memcpy(path_buf, path, len);
			path_buf[len] = '/';
			memcpy(path_buf + len + 1, prog, str_len(prog) + 1);
			execve(path_buf, go_argv, go_envp);
			if (errno != ENOENT && errno != ENOTDIR && errno != EACCES)
				child_fail(STEP_EXEC);
		}
		path += len;
		if (*path == ':')
			path++;
	}
	errno = ENOENT;
	child_fail(STEP_EXEC);
}

/* PID 1: wait for the function, report its status, end the namespace. */
static void __attribute__((noreturn))
reap(pid_t fn)
{
	int			status;
	pid_t		pid;

	syscall(SYS_close_range, 0, FD_STATUS - 1, 0);
	for (;;)
	{
		pid = waitpid(-1, &status, 0);
		if (pid == fn || (pid < 0 && errno == ECHILD))
			break;
	}
	(void) !write(FD_STATUS, &status, sizeof(status));
	_exit(0);
}

static void __attribute__((noreturn))
child_main(const int fds[FD_LAST - FD_IN])
{
	const char *bundle,
			   *rootfs,
			   *workdir;
	go_header  *h;
	sigset_t	none;
	pid_t		fn;

	move_fds(fds);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Wait until the parent has written the user mapping. */
	{
		char		mapped;

		if (read_full(FD_GO, &mapped, 1) != 1)
			_exit(0);			/* the stem was discarded */
	}
	/*
	 * Become root of the user namespace, so that new files have an owner.
	 * Raw system calls: this process was cloned from a multi-threaded one
	 * without glibc knowing, so glibc's set*id (which signals every thread
	 * it believes exists) and fork (which takes malloc's locks, perhaps held
	 * by a thread that is not here) must not be used.
	 */
	if (sb.uid == 0 && (syscall(SYS_setresgid, 0, 0, 0) < 0 ||
						syscall(SYS_setresuid, 0, 0, 0) < 0))
		child_fail(STEP_IDS);
	/* Changing credentials cleared the death signal: set it again. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prepare_root();

	h = receive_go(&bundle, &rootfs, &workdir);
	finish_root(bundle, rootfs, h->tmp_mb, h->net != 0, h->nsecrets > 0);
	if (h->nsecrets > 0)
		mount_secrets(h);

	fn = (pid_t) syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
	if (fn < 0)
		child_fail(STEP_FORK);
	if (fn > 0)
		reap(fn);
	/* The function, PID 2. */
	if (dup2(FD_IN, 0) < 0 || dup2(FD_OUT, 1) < 0 || dup2(FD_ERR, 2) < 0 ||
		(h->session && dup2(FD_SOCK, 3) < 0))
		child_fail(STEP_FDS);
	syscall(SYS_close_range, h->session ? 4 : 3, FD_EXEC - 1, 0);
	syscall(SYS_close_range, FD_EXEC + 1, ~0U, 0);
	setsid();
	drop_privileges(h->uid, h->gid);
	check_not_root();
	if (chdir(workdir[0] ? workdir : "/fn") < 0)
		child_fail(STEP_CHDIR);
	exec_function();
	_exit(127);
}

/* ---------------------------------------------------------------------
 * Parent side
 * --------------------------------------------------------------------- */

static int
write_proc(pid_t pid, const char *file, const char *text)
{
	char		path[64];
	int			fd;
	int			rc = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int
map_ids(pid_t pid)
{
	char		map[64];
	int			rc;

	if (sb.uid == 0)
		snprintf(map, sizeof(map), "0 %d 65536\n", ROOT_UID_BASE);
	else
		snprintf(map, sizeof(map), "%d %d 1\n", DEFAULT_UID, (int) sb.uid);
	rc = write_proc(pid, "uid_map", map);
	if (rc == 0)
		rc = write_proc(pid, "setgroups", "deny");
	if (rc == 0 && sb.uid != 0)
		snprintf(map, sizeof(map), "%d %d 1\n", DEFAULT_UID, (int) sb.gid);
	if (rc == 0)
		rc = write_proc(pid, "gid_map", map);
	return rc;
}

/*
 * Outbound network for a sandbox: slirp4netns runs on the host side with a
 * tap device in the sandbox's network namespace, user-mode NAT, and no way
 * to the host's loopback (so not to a database listening there).
 */
static int
start_net(fx_stem *s, char **why)
{
	static const char *const paths[] = {"/usr/bin/slirp4netns", "/usr/local/bin/slirp4netns", NULL};
	const char *prog = NULL;
	char		pid[16];
	char		userns[64];
	int			ready[2],
				ex[2];
	char		c;
	pid_t		child;

	for (int i = 0; paths[i] && prog == NULL; i++)
		if (access(paths[i], X_OK) == 0)
			prog = paths[i];
	if (prog == NULL)
	{
		*why = fx_xstrdup("network access needs slirp4netns, which is not installed");
		return -ENOENT;
	}
	snprintf(pid, sizeof(pid), "%d", (int) s->pid);
	snprintf(userns, sizeof(userns), "--userns-path=/proc/%d/ns/user", (int) s->pid);
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0)
	{
		*why = fx_xasprintf("cannot create pipes: %s", strerror(errno));
		return -errno;
	}
	child = fork();
	if (child == 0)
	{
		char	   *argv[] = {"slirp4netns", "--configure", "--mtu=65520",
			"--disable-host-loopback", "--ready-fd=3", "--exit-fd=4",
		sb.uid == 0 ? "--enable-sandbox" : userns, pid, "tap0", NULL};

		if (dup2(ready[1], 3) < 0 || dup2(ex[0], 4) < 0)
			_exit(127);
		syscall(SYS_close_range, 5, ~0U, 0);
		execv(prog, argv);
		_exit(127);
	}
	close(ready[1]);
	close(ex[0]);
	if (child < 0 || read(ready[0], &c, 1) != 1)
	{
		*why = fx_xstrdup("slirp4netns could not set up the sandbox's network");
		close(ready[0]);
		close(ex[1]);
		if (child > 0)
		{
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
		}
		return -EIO;
	}
	close(ready[0]);
	s->net_pid = child;
	s->net_exit = ex[1];
	return 0;
}

/*
 * slirp4netns reaches whatever the host reaches, including the host's own
 * addresses (and so a database listening on them) and link-local metadata
 * services: make those unreachable by routes in the sandbox's network
 * namespace, which the function (no capabilities) cannot change.
 */
static int
fence_net(fx_stem *s, char **why)
{
	struct ifaddrs *ifs = NULL;
	char	   *script = fx_xstrdup("route add unreachable 169.254.0.0/16\n");
	char		ns[64];
	int			in[2];
	int			status;
	pid_t		child;

	if (getifaddrs(&ifs) == 0)
		for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
		{
			char		addr[INET_ADDRSTRLEN];
			char	   *more;

			if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
				continue;
			inet_ntop(AF_INET, &((struct sockaddr_in *) i->ifa_addr)->sin_addr, addr, sizeof(addr));
			if (strncmp(addr, "127.", 4) == 0)
				continue;
			more = fx_xasprintf("%sroute add unreachable %s/32\n", script, addr);
			free(script);
			script = more;
		}
	freeifaddrs(ifs);
	snprintf(ns, sizeof(ns), "/proc/%d/ns", (int) s->pid);
	if (pipe2(in, O_CLOEXEC) < 0)
	{
		free(script);
		*why = fx_xasprintf("cannot create pipes: %s", strerror(errno));
		return -errno;
	}
	child = fork();
	if (child == 0)
	{
		char		path[96];
		int			fd;

		if (sb.uid != 0)
		{
			snprintf(path, sizeof(path), "%s/user", ns);
			if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || setns(fd, CLONE_NEWUSER) < 0)
				_exit(126);
		}
		snprintf(path, sizeof(path), "%s/net", ns);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || setns(fd, CLONE_NEWNET) < 0 ||
			dup2(in[0], 0) < 0)
			_exit(126);
		execl("/usr/sbin/ip", "ip", "-batch", "-", (char *) NULL);
		execl("/sbin/ip", "ip", "-batch", "-", (char *) NULL);
		_exit(127);
	}
	close(in[0]);
	if (child > 0)
		(void) !write(in[1], script, strlen(script));
	close(in[1]);
	free(script);
	if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
		WEXITSTATUS(status) != 0)
	{
		*why = fx_xstrdup("cannot fence the sandbox's network off the host (needs iproute2's ip)");
		return -EIO;
	}
	return 0;
}

static void
stop_net(fx_stem *s)
{
	if (s->net_pid > 0)
	{
		close(s->net_exit);
		kill(s->net_pid, SIGTERM);
		waitpid(s->net_pid, NULL, 0);
		s->net_pid = 0;
	}
}

static void
close_stem_fds(fx_stem *s)
{
	int			fds[] = {s->in, s->out, s->err, s->sock, s->go, s->exec_err,
	s->status, s->pidfd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void
stem_free(fx_stem *s)
{
	stop_net(s);
	close_stem_fds(s);
	fx_cgroup_destroy(&s->cg);
	free(s);
}

/* Make a stem: may run on a thread-pool thread. */
static fx_stem *
stem_create(char **why)
{
	fx_stem    *s = fx_xcalloc(1, sizeof(*s));
	int			in[2],
				out[2],
				err[2],
				sock[2],
				go[2],
				ex[2],
				st[2];
	int			child[FD_LAST - FD_IN];
	struct clone_args args;
	int			rc;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
		socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock) < 0 ||
		pipe2(go, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0)
	{
		*why = fx_xasprintf("cannot create pipes: %s", strerror(errno));
		free(s);
		return NULL;
	}
	child[0] = in[0];
	child[1] = out[1];
	child[2] = err[1];
	child[3] = sock[1];
	child[4] = go[0];
	child[5] = ex[1];
	child[6] = st[1];
	s->in = in[1];
	s->out = out[0];
	s->err = err[0];
	s->sock = sock[0];
	s->go = go[1];
	s->exec_err = ex[0];
	s->status = st[0];
	s->pidfd = -1;
	rc = fx_cgroup_create(&s->cg);
	if (rc < 0)
		fx_warn("cannot create a cgroup for a sandbox: %s", strerror(-rc));

	memset(&args, 0, sizeof(args));
	args.flags = CLONE_PIDFD | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS |
		CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP;
	args.pidfd = (uint64_t) (uintptr_t) &s->pidfd;
	args.exit_signal = SIGCHLD;
	if (s->cg.dirfd >= 0)
	{
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t) s->cg.dirfd;
	}
	s->pid = (pid_t) syscall(SYS_clone3, &args, sizeof(args));
	if (s->pid < 0 && errno == ENOSYS)
	{
		/* No clone3 (valgrind): clone, then a pidfd if there is one. */
		s->pid = (pid_t) syscall(SYS_clone, (args.flags & ~(CLONE_PIDFD | CLONE_INTO_CGROUP)) | SIGCHLD,
								 NULL, NULL, NULL, 0);
		if (s->pid > 0)
		{
			s->pidfd = (int) syscall(SYS_pidfd_open, s->pid, 0);
			s->cg_attach = true;
		}
	}
	if (s->pid == 0)
		child_main(child);
	rc = s->pid < 0 ? -errno : 0;
	for (int i = 0; i < FD_LAST - FD_IN; i++)
		close(child[i]);
	if (rc < 0)
	{
		*why = fx_xasprintf("cannot create the sandbox's namespaces: %s", strerror(-rc));
		stem_free(s);
		return NULL;
	}
	rc = map_ids(s->pid);
	if (rc == 0)
		rc = fx_cgroup_attach(&s->cg, s->pid, s->cg_attach);
	if (rc == 0 && write(s->go, "M", 1) != 1)
		rc = -errno;			/* the child prepares its root now */
	if (rc < 0)
	{
		*why = fx_xasprintf("cannot set up the sandbox: %s", strerror(-rc));
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		stem_free(s);
		return NULL;
	}
	return s;
}

static void
discard(fx_stem *s)
{
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	stem_free(s);
}

/* Prewarming on the thread pool. */
typedef struct fill_req
{
	uv_work_t	req;
	fx_stem    *stem;
	char	   *why;
} fill_req;

static void
fill_work(uv_work_t *req)
{
	fill_req   *f = (fill_req *) req;

	f->stem = stem_create(&f->why);
}

static void
fill_done(uv_work_t *req, int status)
{
	fill_req   *f = (fill_req *) req;

	(void) status;
	sb.filling--;
	if (f->stem == NULL)
	{
		fx_warn("cannot prewarm a sandbox: %s", f->why);
		free(f->why);
	}
	else if (sb.shutdown)
		discard(f->stem);
	else
	{
		f->stem->next = sb.pool;
		sb.pool = f->stem;
		sb.npool++;
	}
	free(f);
}

static void
refill(void)
{
	while (!sb.shutdown && sb.npool + sb.filling < sb.prewarm)
	{
		fill_req   *f = fx_xcalloc(1, sizeof(*f));

		sb.filling++;
		uv_queue_work(sb.loop, &f->req, fill_work, fill_done);
	}
}

/*
 * The function's uid and gid in the sandbox: the image's user when the
 * worker is root (an image's root is uid 1000 too), else 1000.  Never 0,
 * inside or on the host: a hard check, though no option can make it so.
 */
static int
launch_ids(const fx_launch *l, uint32_t *uid, uint32_t *gid, char **why)
{
	unsigned long host_uid,
				host_gid;

	*uid = l->uid > 0 && sb.uid == 0 ? (uint32_t) l->uid : DEFAULT_UID;
	*gid = l->gid > 0 && sb.uid == 0 ? (uint32_t) l->gid : DEFAULT_UID;
	host_uid = sb.uid == 0 ? ROOT_UID_BASE + (unsigned long) *uid : (unsigned long) sb.uid;
	host_gid = sb.uid == 0 ? ROOT_UID_BASE + (unsigned long) *gid : (unsigned long) sb.gid;
	if (*uid == 0 || *gid == 0 || host_uid == 0 || host_gid == 0)
	{
		*why = fx_xasprintf("refusing to run the function as root (uid %u, gid %u in the sandbox; "
							"%lu, %lu on the host)", *uid, *gid, host_uid, host_gid);
		return -EPERM;
	}
	return 0;
}

/* The /run tmpfs for the secrets, in KiB: a page per 4 KiB or part. */
static uint32_t
secrets_kb(const struct fx_secrets *set)
{
	uint32_t	kb = 16;

	for (int i = 0; i < fx_secrets_count(set); i++)
		kb += 4 * (uint32_t) ((fx_secrets_get(set, i)->len + 4095) / 4096 + 1);
	return kb;
}

static int
write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0)
	{
		ssize_t		w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t) w;
	}
	return 0;
}

/* After the launch description: each secret, as write_secret reads it. */
static int
send_secrets(fx_stem *s, const struct fx_secrets *set)
{
	int			rc = 0;

	for (int i = 0; rc == 0 && i < fx_secrets_count(set); i++)
	{
		const fx_secret *sec = fx_secrets_get(set, i);
		secret_header sh = {(uint32_t) strlen(sec->name), (uint32_t) sec->len};

		rc = write_all(s->go, &sh, sizeof(sh));
		if (rc == 0)
			rc = write_all(s->go, sec->name, sh.name_len);
		if (rc == 0)
			rc = write_all(s->go, sec->value, sec->len);
	}
	return rc;
}

static int
send_go(fx_stem *s, const fx_launch *l, uint32_t uid, uint32_t gid)
{
	size_t		len = sizeof(go_header);
	char	   *msg;
	char	   *p;
	go_header	h;
	int			argc = 0,
				envc = 0;
	const char *strs[3] = {l->bundle_dir, l->rootfs ? l->rootfs : "",
	l->workdir ? l->workdir : ""};
	ssize_t		n;

	for (int i = 0; i < 3; i++)
		len += strlen(strs[i]) + 1;
	for (; l->argv[argc]; argc++)
		len += strlen(l->argv[argc]) + 1;
	for (; l->envp[envc]; envc++)
		len += strlen(l->envp[envc]) + 1;
	if (len > GO_MAX || argc + envc + 2 > GO_MAXV)
		return -E2BIG;
	memset(&h, 0, sizeof(h));
	h.len = (uint32_t) len;
	h.session = l->session;
	h.uid = uid;
	h.gid = gid;
	h.tmp_mb = (uint32_t) l->tmp_mb;
	h.argc = argc;
	h.envc = envc;
	h.net = l->net;
	h.nsecrets = (uint32_t) fx_secrets_count(l->secrets);
	h.secrets_kb = secrets_kb(l->secrets);
	msg = fx_xmalloc(len);
	memcpy(msg, &h, sizeof(h));
	p = msg + sizeof(h);
	for (int i = 0; i < 3; i++)
		p = stpcpy(p, strs[i]) + 1;
	for (int i = 0; i < argc; i++)
		p = stpcpy(p, l->argv[i]) + 1;
	for (int i = 0; i < envc; i++)
		p = stpcpy(p, l->envp[i]) + 1;
	n = write(s->go, msg, len);	/* blocking: the child is reading */
	free(msg);
	if (n != (ssize_t) len)
		return -EPIPE;
	return send_secrets(s, l->secrets) < 0 ? -EPIPE : 0;
}

int
fx_sandbox_launch(const fx_launch *l, fx_sandboxed *out, char **why)
{
	fx_stem    *s = sb.pool;
	int			msg[2];
	ssize_t		n;
	int			rc;
	uint32_t	uid,
				gid;

	if ((rc = launch_ids(l, &uid, &gid, why)) < 0)
		return rc;
	if (l->secrets && l->rootfs && fx_secrets_count(l->secrets) > 0)
	{
		/* the mount point for /run/secrets, in an image unpacked before it was needed */
		char	   *run = fx_xasprintf("%s/run", l->rootfs);

		(void) mkdir(run, 0755);	/* not following a link: EEXIST */
		free(run);
	}
	if (s)
	{
		sb.pool = s->next;
		sb.npool--;
		out->prewarmed = true;
	}
	else
	{
		s = stem_create(why);
		if (s == NULL)
			return -EAGAIN;
		out->prewarmed = false;
	}
	refill();
	rc = fx_cgroup_limit(&s->cg, l->memory_mb, l->pids, l->cpu);
	if (rc < 0)
		fx_warn("cannot set a sandbox's cgroup limits: %s", strerror(-rc));
	if (l->net && ((rc = start_net(s, why)) < 0 || (rc = fence_net(s, why)) < 0))
	{
		discard(s);
		return rc;
	}
	rc = send_go(s, l, uid, gid);
	if (rc < 0 && rc != -EPIPE)
	{
		*why = fx_xasprintf("cannot launch the sandbox: %s", strerror(-rc));
		discard(s);
		return rc;
	}
	/* -EPIPE: the child stopped reading; its exec-error pipe says why. */
	close(s->go);
	s->go = -1;
	/* Setting up takes about a millisecond; never wait forever on it. */
	{
		struct pollfd pfd = {s->exec_err, POLLIN, 0};
		int			ready;

		while ((ready = poll(&pfd, 1, 10000)) < 0 && errno == EINTR)
			;
		if (ready == 0)
		{
			*why = fx_xstrdup("the sandbox did not start within 10 s");
			discard(s);
			return -ETIMEDOUT;
		}
	}
	while ((n = read(s->exec_err, msg, sizeof(msg))) < 0 && errno == EINTR)
		;
	close(s->exec_err);
	s->exec_err = -1;
	if (n == sizeof(msg))
	{
		int			step = msg[0] >= 0 && msg[0] <= STEP_EXEC ? msg[0] : STEP_EXEC;

		*why = step == STEP_EXEC
			? fx_xasprintf("cannot execute \"%s\": %s", l->argv[0], strerror(msg[1]))
			: fx_xasprintf("cannot %s in the sandbox: %s", step_names[step], strerror(msg[1]));
		discard(s);
		return -msg[1];
	}
	if (rc < 0)
	{
		*why = fx_xasprintf("cannot launch the sandbox: %s", strerror(-rc));
		discard(s);
		return rc;
	}
	out->pid = s->pid;
	out->pidfd = s->pidfd;
	out->in = s->in;
	out->out = s->out;
	out->err = s->err;
	out->sock = s->sock;
	out->stem = s;
	/* The caller owns these now. */
	s->pidfd = s->in = s->out = s->err = s->sock = -1;
	return 0;
}

void
fx_sandbox_done(fx_stem *s, int *status, fx_cgroup_usage *usage)
{
	int			fn_status;

	if (read(s->status, &fn_status, sizeof(fn_status)) == sizeof(fn_status))
		*status = fn_status;
	fx_cgroup_usage_read(&s->cg, usage);
	stem_free(s);
}

int
fx_sandbox_init(uv_loop_t *loop, const fx_sandbox_config *cfg, char **why)
{
	int			rc;

	memset(&sb, 0, sizeof(sb));
	sb.loop = loop;
	sb.stage = fx_xstrdup(cfg->stage_dir);
	sb.prewarm = cfg->prewarm;
	sb.uid = geteuid();
	sb.gid = getegid();
	rc = fx_mkdirs(sb.stage, 0755);
	if (rc < 0)
	{
		*why = fx_xasprintf("cannot create \"%s\": %s", sb.stage, strerror(-rc));
		return rc;
	}
	chmod(sb.stage, 0755);
	rc = fx_seccomp_build(&sb.seccomp, why);
	if (rc < 0)
		return rc;
	if (fx_cgroup_init() == FX_CGROUP_NONE)
		fx_warn("no writable cgroup hierarchy: sandboxes run without memory, pids and CPU limits");
	else
		fx_info("sandbox limits through %s", fx_cgroup_mode_name());
	/* One synchronous stem proves that this host can make sandboxes. */
	{
		fx_stem    *s = stem_create(why);

		if (s == NULL)
			return -EPERM;
		s->next = sb.pool;
		sb.pool = s;
		sb.npool = 1;
	}
	refill();
	return 0;
}

void
fx_sandbox_shutdown(void)
{
	sb.shutdown = true;
	while (sb.pool)
	{
		fx_stem    *s = sb.pool;

		sb.pool = s->next;
		discard(s);
	}
	sb.npool = 0;
	fx_cgroup_shutdown();
	free(sb.seccomp.filter);
	sb.seccomp.filter = NULL;
	free(sb.stage);
	sb.stage = NULL;
}
