/*
 * fx_proc.h: starting a function's process and watching it.
 *
 * This is the one place that creates a function's process (the sandbox
 * seam): fx_proc_start() clones the child with a pidfd, wires its stdin,
 * stdout, stderr and, in session mode, the protocol socket as fd 3, and
 * puts it in a process group of its own so that the whole tree can be
 * killed.  The owner gets raw bytes from each stream and one on_exit call
 * when the process has exited and its stdout and stderr are drained.
 */
#ifndef FX_PROC_H
#define FX_PROC_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <uv.h>

#include "fx_sandbox.h"

typedef struct fx_proc fx_proc;

typedef void (*fx_proc_data_cb) (fx_proc *p, const char *buf, size_t n);
typedef void (*fx_proc_cb) (fx_proc *p);

typedef struct fx_proc_spec
{
	char	  **argv;			/* argv[0] is resolved against cwd and PATH */
	char	  **envp;
	const char *cwd;
	bool		session;		/* give the child a protocol socket as fd 3 */
	const fx_launch *sandbox;	/* run it in a sandbox; NULL: a plain process */
} fx_proc_spec;

struct fx_proc
{
	uv_loop_t  *loop;
	pid_t		pid;
	int			pidfd;
	uv_poll_t	exitw;			/* pidfd readable = exited (if pidfd >= 0) */
	struct fx_proc *next_nopidfd;	/* watched through SIGCHLD instead */
	uv_pipe_t	in;				/* child's stdin */
	uv_pipe_t	out;			/* child's stdout */
	uv_pipe_t	err;			/* child's stderr */
	uv_pipe_t	sock;			/* protocol socket (session mode) */
	bool		has_sock;
	bool		in_open;
	int			handles;		/* open handles; freed when it reaches 0 */
	bool		exited;
	bool		out_eof;
	bool		err_eof;
	bool		reported;		/* on_exit was called */
	bool		closing;
	int			status;			/* wait status (the function's, if sandboxed) */
	struct rusage ru;
	fx_stem    *stem;			/* the sandbox, until it is reaped */
	bool		prewarmed;		/* started from a prewarmed sandbox */
	bool		oom_killed;		/* its cgroup's memory limit killed it */
	long		peak_kb;		/* cgroup peak memory, -1 if unknown */
	uv_timer_t	drain;			/* bounds the wait for EOF after exit */
	uint64_t	started_ns;
	void	   *owner;
	fx_proc_data_cb on_out;
	fx_proc_data_cb on_err;
	fx_proc_data_cb on_sock;	/* bytes from the protocol socket */
	fx_proc_cb	on_sock_eof;
	fx_proc_cb	on_exit;
	fx_proc_cb	on_closed;		/* after fx_proc_close: all handles gone */
};

/* Start the process; on failure returns -errno and sets *why. */
int			fx_proc_start(uv_loop_t *loop, const fx_proc_spec *spec, fx_proc *p,
						  char **why);

/* Write to stdin then close it (simple mode). */
void		fx_proc_write_stdin(fx_proc *p, const char *buf, size_t n);

/* Write to the protocol socket; buf is copied. */
int			fx_proc_send(fx_proc *p, const char *buf, size_t n);

/* Bytes given to fx_proc_send that the process has not taken yet. */
size_t		fx_proc_unsent(fx_proc *p);

/*
 * Hand what its stdout and stderr pipes hold now to on_out and on_err,
 * without waiting for the loop: what the process wrote before an answer
 * on its socket is read before that answer is acted on.
 */
void		fx_proc_drain(fx_proc *p);

/* SIGKILL the whole process group. */
void		fx_proc_kill(fx_proc *p);

/* Close every handle; on_closed runs at the end.  Kills it if still alive. */
void		fx_proc_close(fx_proc *p);

/*
 * In a function's process, just before exec: the SCHED_BATCH policy, so
 * that a function woken with a request waits for the CPU it wakes on rather
 * than preempting what runs there, most often the worker, which has more
 * requests to hand out.  Async-signal-safe.
 */
void		fx_proc_batch_policy(void);

/* "exit status 3", "killed by signal 9" */
char	   *fx_proc_describe(int status);

#endif							/* FX_PROC_H */
