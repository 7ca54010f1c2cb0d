/*
 * fx_seccomp.c: compile the sandbox's seccomp filter with libseccomp.
 *
 * Built once per worker and exported as BPF, so that a launch only loads
 * it (one prctl in the child, async-signal-safe).  Everything is allowed
 * except what a function has no business doing and what would let it undo
 * its sandbox: mounting, new namespaces, tracing other processes, loading
 * kernel code, BPF, perf, the kernel keyring, clocks, reboot, io_uring (a
 * large attack surface) and the like.
 * Denied calls fail with EPERM; clone3 fails with ENOSYS, so that C
 * libraries fall back to clone, whose namespace flags the filter can see.
 * Calls of another architecture (i386, x32) kill the process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <seccomp.h>

#include "fx_log.h"
#include "fx_seccomp.h"

static const char *const denied[] = {
	"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
	"kexec_load", "kexec_file_load", "init_module", "finit_module",
	"delete_module", "bpf", "perf_event_open", "keyctl", "add_key",
	"request_key", "swapon", "swapoff", "reboot", "syslog", "acct",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"open_by_handle_at", "name_to_handle_at", "userfaultfd", "quotactl",
	"lookup_dcookie", "vhangup", "iopl", "ioperm", "fsopen", "fsmount",
	"fsconfig", "fspick", "move_mount", "open_tree", "mount_setattr",
	"uselib", "nfsservctl", "fanotify_init", "pidfd_getfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	NULL
};

static const unsigned long ns_flags[] = {
	CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS,
	CLONE_NEWIPC, CLONE_NEWCGROUP, 0
};

int
fx_seccomp_build(struct sock_fprog *prog, char **why)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int			rc = 0;
	int			fd = -1;
	off_t		size;

	if (ctx == NULL)
	{
		*why = fx_xstrdup("cannot create the seccomp filter");
		return -ENOMEM;
	}
	for (int i = 0; denied[i] && rc == 0; i++)
	{
		int			nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr != __NR_SCMP_ERROR)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	for (int i = 0; ns_flags[i] && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
							  SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc == 0 && (fd = memfd_create("fx-seccomp", MFD_CLOEXEC)) < 0)
		rc = -errno;
	if (rc == 0)
		rc = seccomp_export_bpf(ctx, fd);
	if (rc == 0 && (size = lseek(fd, 0, SEEK_END)) > 0)
	{
		prog->len = (unsigned short) (size / sizeof(struct sock_filter));
		prog->filter = fx_xmalloc(size);
		if (pread(fd, prog->filter, size, 0) != size)
			rc = -EIO;
	}
	else if (rc == 0)
		rc = -EIO;
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	if (rc < 0)
		*why = fx_xasprintf("cannot build the seccomp filter: %s", strerror(-rc));
	return rc;
}
