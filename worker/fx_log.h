/*
 * fx_log.h: the worker's own log (stderr).  Every line names the
 * invocation it is about, when there is one.
 */
#ifndef FX_LOG_H
#define FX_LOG_H

#include <stdint.h>

typedef enum fx_log_level
{
	FX_LOG_DEBUG,
	FX_LOG_INFO,
	FX_LOG_WARN,
	FX_LOG_ERROR
} fx_log_level;

extern fx_log_level fx_log_min;

/*
 * If set, a line about an invocation goes through it first: it returns
 * the line with that invocation's secrets redacted (allocated), or NULL
 * if there is nothing to redact (fx_secret.c sets it).
 */
extern char *(*fx_log_redact) (int64_t invocation, const char *msg);

void		fx_log(fx_log_level level, int64_t invocation, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

#define fx_debug(...) fx_log(FX_LOG_DEBUG, 0, __VA_ARGS__)
#define fx_info(...) fx_log(FX_LOG_INFO, 0, __VA_ARGS__)
#define fx_warn(...) fx_log(FX_LOG_WARN, 0, __VA_ARGS__)
#define fx_err(...) fx_log(FX_LOG_ERROR, 0, __VA_ARGS__)

/* Allocation that cannot fail: abort on out of memory. */
void	   *fx_xmalloc(size_t size);
void	   *fx_xcalloc(size_t n, size_t size);
void	   *fx_xrealloc(void *p, size_t size);
char	   *fx_xstrdup(const char *s);
char	   *fx_xasprintf(const char *fmt,...) __attribute__((format(printf, 1, 2)));

/* Milliseconds since the Unix epoch and a monotonic clock in ns. */
int64_t		fx_now_ms(void);
uint64_t	fx_mono_ns(void);

#endif							/* FX_LOG_H */
