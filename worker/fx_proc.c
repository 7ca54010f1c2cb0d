/*
 * fx_proc.c: clone the function's process and own its handles.
 *
 * The code between clone and execve runs in the child of a process that
 * libuv may have made multi-threaded, so it makes only async-signal-safe
 * system calls: no malloc, no logging.  A failure writes errno to a
 * close-on-exec pipe and exits with 127; the parent reads end of file as
 * "execve succeeded".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fx/fx_common.h"
#include "fx_log.h"
#include "fx_proc.h"

#define DRAIN_MS 2000			/* wait for pipes to drain after exit */

typedef struct write_req
{
	uv_write_t	req;
	char	   *buf;
} write_req;

/* Which step of the child's set-up failed, sent with errno. */
enum child_step
{
	STEP_DUP,
	STEP_CHDIR,
	STEP_EXEC
};

static const char *const step_names[] = {"set up file descriptors", "enter directory", "execute"};

static void
child_fail(int errfd, int step)
{
	int			msg[2] = {step, errno};

	(void) !write(errfd, msg, sizeof(msg));
	_exit(127);
}

void
fx_proc_batch_policy(void)
{
	struct sched_param none = {0};

	/* Only a lower policy: no privilege needed, and nothing to do if refused. */
	(void) syscall(SYS_sched_setscheduler, 0, SCHED_BATCH, &none);
}

/* In the child: fds[0..3] become 0..3 (fds[3] may be -1). */
static void
child_main(const fx_proc_spec *spec, const char *path, int fds[4], int errfd)
{
	sigset_t	all;
	int			high[4];

	sigemptyset(&all);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &all, NULL);
	setsid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);	/* the worker's death ends it */
	for (int i = 0; i < 4; i++)
	{
		high[i] = -1;
		if (fds[i] >= 0 && (high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 16)) < 0)
			child_fail(errfd, STEP_DUP);
	}
	for (int i = 0; i < 4; i++)
		if (high[i] >= 0 && dup2(high[i], i) < 0)
			child_fail(errfd, STEP_DUP);
	if (syscall(SYS_close_range, high[3] >= 0 ? 4 : 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		child_fail(errfd, STEP_DUP);
	if (spec->cwd && chdir(spec->cwd) < 0)
		child_fail(errfd, STEP_CHDIR);
	fx_proc_batch_policy();
	execve(path, spec->argv, spec->envp);
	child_fail(errfd, STEP_EXEC);
}

static char *
resolve(const char *prog, const char *cwd, char **envp)
{
	const char *path = "/usr/local/bin:/usr/bin:/bin";

	if (strchr(prog, '/'))
		return prog[0] == '/' || cwd == NULL ? fx_xstrdup(prog)
			: fx_xasprintf("%s/%s", cwd, prog);
	for (char **e = envp; e && *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	while (*path)
	{
		size_t		len = strcspn(path, ":");
		char	   *cand = fx_xasprintf("%.*s/%s", (int) len, path, prog);

		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
		path += len;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/*
 * clone3 with a pidfd; where clone3 is missing (old kernels, valgrind),
 * fork and open the pidfd after: the child cannot be reaped by anyone else
 * meanwhile, so the pid cannot be reused.
 */
static pid_t
clone_pidfd(int *pidfd)
{
	static bool no_clone3 = false;
	static bool no_pidfd_open = false;
	struct clone_args args;
	pid_t		pid;

	memset(&args, 0, sizeof(args));
	args.flags = CLONE_PIDFD;
	args.pidfd = (uint64_t) (uintptr_t) pidfd;
	args.exit_signal = SIGCHLD;
	if (!no_clone3)
	{
		pid = (pid_t) syscall(SYS_clone3, &args, sizeof(args));
		if (pid >= 0 || errno != ENOSYS)
			return pid;
		no_clone3 = true;
	}
	pid = fork();
	if (pid > 0 && (no_pidfd_open ||
					(*pidfd = (int) syscall(SYS_pidfd_open, pid, 0)) < 0))
	{
		*pidfd = -1;
		if (no_pidfd_open || errno == ENOSYS)
		{
			no_pidfd_open = true;
			return pid;			/* no pidfds at all: SIGCHLD tells us */
		}
		{
			int			e = errno;

			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			errno = e;
			return -1;
		}
	}
	return pid;
}

/*
 * Without pidfds (valgrind does not know pidfd_open), exits are noticed on
 * SIGCHLD by trying every such process, as libuv does for uv_spawn.
 */
static fx_proc *sigchld_procs;
static uv_signal_t sigchld;
static bool sigchld_started;

static void check_exit(fx_proc *p);

static void
on_sigchld(uv_signal_t *h, int signum)
{
	fx_proc    *p = sigchld_procs;

	(void) h;
	(void) signum;
	while (p)
	{
		fx_proc    *next = p->next_nopidfd;

		check_exit(p);
		p = next;
	}
}

static void
watch_without_pidfd(fx_proc *p)
{
	if (!sigchld_started)
	{
		uv_signal_init(p->loop, &sigchld);
		uv_signal_start(&sigchld, on_sigchld, SIGCHLD);
		uv_unref((uv_handle_t *) &sigchld);
		sigchld_started = true;
	}
	p->next_nopidfd = sigchld_procs;
	sigchld_procs = p;
}

static void
unwatch_without_pidfd(fx_proc *p)
{
	for (fx_proc **pp = &sigchld_procs; *pp; pp = &(*pp)->next_nopidfd)
		if (*pp == p)
		{
			*pp = p->next_nopidfd;
			return;
		}
}

static void
close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void handle_closed(uv_handle_t *h);
static void maybe_report(fx_proc *p);
static void wire(uv_loop_t *loop, fx_proc *p, int in, int out, int err, int sock);
static int	start_sandboxed(uv_loop_t *loop, const fx_proc_spec *spec, fx_proc *p,
							char **why);

/*
 * Every read of a process's pipes and socket goes through one buffer: the
 * loop reads one stream at a time, and the callbacks copy what they keep.
 * A 64 kB malloc and free per read made glibc consolidate its heap on
 * every free (a chunk that large sets it off), once per answer.
 */
static char read_buf[65536];

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void) h;
	(void) suggested;
	buf->base = read_buf;
	buf->len = sizeof(read_buf);
}

static void
read_out(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	fx_proc    *p = s->data;

	if (n > 0 && p->on_out)
		p->on_out(p, buf->base, n);
	if (n < 0)
	{
		uv_read_stop(s);
		p->out_eof = true;
		maybe_report(p);
	}
}

static void
read_err(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	fx_proc    *p = s->data;

	if (n > 0 && p->on_err)
		p->on_err(p, buf->base, n);
	if (n < 0)
	{
		uv_read_stop(s);
		p->err_eof = true;
		maybe_report(p);
	}
}

static void
read_sock(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	fx_proc    *p = s->data;

	if (n > 0 && p->on_sock)
		p->on_sock(p, buf->base, n);
	if (n < 0)
	{
		uv_read_stop(s);
		if (p->on_sock_eof)
			p->on_sock_eof(p);
	}
}

/* Read what is left in a pipe without waiting (the loop may be behind). */
static void
drain_now(fx_proc *p, uv_pipe_t *pipe, fx_proc_data_cb cb)
{
	uv_os_fd_t	fd;
	char		buf[65536];
	ssize_t		n;

	if (uv_fileno((uv_handle_t *) pipe, &fd) != 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (cb)
			cb(p, buf, n);
}

/*
 * The process exited long ago but a pipe is still open: something outside
 * its process group holds it.  Take what is there and stop waiting.
 */
static void
drain_timeout(uv_timer_t *t)
{
	fx_proc    *p = t->data;

	if (!p->out_eof)
		drain_now(p, &p->out, p->on_out);
	if (!p->err_eof)
		drain_now(p, &p->err, p->on_err);
	p->out_eof = p->err_eof = true;
	maybe_report(p);
}

static void
check_exit(fx_proc *p)
{
	if (p->exited || wait4(p->pid, &p->status, WNOHANG, &p->ru) != p->pid)
		return;
	p->exited = true;
	if (p->stem)
	{
		fx_cgroup_usage u;

		fx_sandbox_done(p->stem, &p->status, &u);
		p->stem = NULL;
		p->oom_killed = u.oom_killed;
		p->peak_kb = u.peak_kb;
	}
	if (p->pidfd >= 0)
		uv_poll_stop(&p->exitw);
	else
		unwatch_without_pidfd(p);
	kill(-p->pid, SIGKILL);		/* nothing of the tree outlives it */
	uv_timer_start(&p->drain, drain_timeout, DRAIN_MS, 0);
	maybe_report(p);
}

static void
on_exited(uv_poll_t *h, int status, int events)
{
	(void) status;
	(void) events;
	check_exit(h->data);
}

static void
maybe_report(fx_proc *p)
{
	if (p->reported || !p->exited || !p->out_eof || !p->err_eof)
		return;
	p->reported = true;
	uv_timer_stop(&p->drain);
	if (p->on_exit)
		p->on_exit(p);
}

static void
open_pipe(fx_proc *p, uv_pipe_t *pipe, int fd)
{
	uv_pipe_init(p->loop, pipe, 0);
	uv_pipe_open(pipe, fd);
	pipe->data = p;
	p->handles++;
}

int
fx_proc_start(uv_loop_t *loop, const fx_proc_spec *spec, fx_proc *p, char **why)
{
	int			in[2],
				out[2],
				err[2],
				sock[2] = {-1, -1},
				ep[2];
	int			fds[4];
	int			msg[2];
	char	   *path;
	ssize_t		n;

	p->loop = loop;
	p->pidfd = -1;
	p->peak_kb = -1;
	if (spec->sandbox)
		return start_sandboxed(loop, spec, p, why);
	path = resolve(spec->argv[0], spec->cwd, spec->envp);
	if (path == NULL)
	{
		*why = fx_xasprintf("command \"%s\" not found", spec->argv[0]);
		return -ENOENT;
	}
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
		pipe2(err, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 ||
		(spec->session && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock) < 0))
	{
		*why = fx_xasprintf("cannot create pipes: %s", strerror(errno));
		free(path);
		return -errno;
	}
	fds[0] = in[0];
	fds[1] = out[1];
	fds[2] = err[1];
	fds[3] = sock[1];
	p->pid = clone_pidfd(&p->pidfd);
	if (p->pid == 0)
		child_main(spec, path, fds, ep[1]);
	free(path);
	close(ep[1]);
	close_fds(fds, 4);
	if (p->pid < 0)
	{
		int			e = errno;

		*why = fx_xasprintf("cannot start process: %s", strerror(e));
		close_fds((int[]) {in[1], out[0], err[0], sock[0], ep[0]}, 5);
		return -e;
	}
	while ((n = read(ep[0], msg, sizeof(msg))) < 0 && errno == EINTR)
		;
	close(ep[0]);
	if (n == sizeof(msg))
	{
		*why = fx_xasprintf("cannot %s \"%s\": %s", step_names[msg[0]],
							msg[0] == STEP_CHDIR ? spec->cwd : spec->argv[0], strerror(msg[1]));
		waitpid(p->pid, NULL, 0);
		close_fds((int[]) {in[1], out[0], err[0], sock[0], p->pidfd}, 5);	/* pidfd may be -1 */
		return -msg[1];
	}

	wire(loop, p, in[1], out[0], err[0], spec->session ? sock[0] : -1);
	return 0;
}

/* Own the parent's ends of the pipes and watch for the exit. */
static void
wire(uv_loop_t *loop, fx_proc *p, int in, int out, int err, int sock)
{
	p->started_ns = fx_mono_ns();
	open_pipe(p, &p->in, in);
	p->in_open = true;
	open_pipe(p, &p->out, out);
	open_pipe(p, &p->err, err);
	uv_read_start((uv_stream_t *) &p->out, alloc_cb, read_out);
	uv_read_start((uv_stream_t *) &p->err, alloc_cb, read_err);
	if (sock >= 0)
	{
		open_pipe(p, &p->sock, sock);
		p->has_sock = true;
		uv_read_start((uv_stream_t *) &p->sock, alloc_cb, read_sock);
	}
	uv_timer_init(loop, &p->drain);
	p->drain.data = p;
	p->handles++;
	if (p->pidfd >= 0)
	{
		uv_poll_init(loop, &p->exitw, p->pidfd);
		p->exitw.data = p;
		p->handles++;
		uv_poll_start(&p->exitw, UV_READABLE, on_exited);
	}
	else
	{
		watch_without_pidfd(p);
		check_exit(p);			/* it may have exited before we watched */
	}
}

static int
start_sandboxed(uv_loop_t *loop, const fx_proc_spec *spec, fx_proc *p, char **why)
{
	fx_sandboxed sbx;
	int			rc = fx_sandbox_launch(spec->sandbox, &sbx, why);

	if (rc < 0)
		return rc;
	p->pid = sbx.pid;
	p->pidfd = sbx.pidfd;
	p->stem = sbx.stem;
	p->prewarmed = sbx.prewarmed;
	wire(loop, p, sbx.in, sbx.out, sbx.err, spec->session ? sbx.sock : -1);
	if (!spec->session)
		close(sbx.sock);
	return 0;
}

static void
write_done(uv_write_t *req, int status)
{
	write_req  *w = (write_req *) req;

	(void) status;				/* a dead reader shows up as its exit */
	free(w->buf);
	free(w);
}

static int
write_to(uv_stream_t *s, const char *buf, size_t n)
{
	write_req  *w = fx_xmalloc(sizeof(*w));
	uv_buf_t	b;
	int			r;

	w->buf = fx_xmalloc(n);
	memcpy(w->buf, buf, n);
	b = uv_buf_init(w->buf, n);
	r = uv_write(&w->req, s, &b, 1, write_done);
	if (r < 0)
	{
		free(w->buf);
		free(w);
	}
	return r;
}

static void
close_in(fx_proc *p)
{
	if (p->in_open)
	{
		p->in_open = false;
		uv_close((uv_handle_t *) &p->in, handle_closed);
	}
}

void
fx_proc_write_stdin(fx_proc *p, const char *buf, size_t n)
{
	if (p->in_open && n > 0)
		write_to((uv_stream_t *) &p->in, buf, n);
	close_in(p);				/* waits for pending writes, then EOF */
}

int
fx_proc_send(fx_proc *p, const char *buf, size_t n)
{
	if (!p->has_sock || p->closing)
		return UV_EPIPE;
	return write_to((uv_stream_t *) &p->sock, buf, n);
}

void
fx_proc_drain(fx_proc *p)
{
	if (p->closing)
		return;
	if (!p->out_eof)
		drain_now(p, &p->out, p->on_out);
	if (!p->err_eof)
		drain_now(p, &p->err, p->on_err);
}

size_t
fx_proc_unsent(fx_proc *p)
{
	return p->has_sock ? uv_stream_get_write_queue_size((uv_stream_t *) &p->sock) : 0;
}

void
fx_proc_kill(fx_proc *p)
{
	if (!p->exited)
	{
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
	}
}

static void
handle_closed(uv_handle_t *h)
{
	fx_proc    *p = h->data;

	if (h == (uv_handle_t *) &p->exitw)
		close(p->pidfd);
	if (--p->handles == 0 && p->on_closed)
		p->on_closed(p);
}

void
fx_proc_close(fx_proc *p)
{
	if (p->closing)
		return;
	p->closing = true;
	fx_proc_kill(p);
	if (!p->exited)
	{
		/* Reap synchronously: SIGKILL cannot be ignored, so this is short. */
		if (wait4(p->pid, &p->status, 0, &p->ru) == p->pid)
			p->exited = true;
		if (p->pidfd < 0)
			unwatch_without_pidfd(p);
		if (p->stem)
		{
			fx_cgroup_usage u;

			fx_sandbox_done(p->stem, &p->status, &u);
			p->stem = NULL;
		}
	}
	close_in(p);
	uv_close((uv_handle_t *) &p->out, handle_closed);
	uv_close((uv_handle_t *) &p->err, handle_closed);
	if (p->has_sock)
		uv_close((uv_handle_t *) &p->sock, handle_closed);
	if (p->pidfd >= 0)
		uv_close((uv_handle_t *) &p->exitw, handle_closed);
	uv_close((uv_handle_t *) &p->drain, handle_closed);
}

char *
fx_proc_describe(int status)
{
	if (WIFEXITED(status))
		return fx_xasprintf("exit status %d", WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return fx_xasprintf("killed by signal %d (%s)", WTERMSIG(status),
							strsignal(WTERMSIG(status)));
	return fx_xasprintf("ended with wait status %d", status);
}
