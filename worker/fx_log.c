/*
 * fx_log.c: worker log lines and allocation helpers.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fx_log.h"

fx_log_level fx_log_min = FX_LOG_INFO;
char	   *(*fx_log_redact) (int64_t invocation, const char *msg);

static const char *const level_names[] = {"debug", "info", "warning", "error"};

void
fx_log(fx_log_level level, int64_t invocation, const char *fmt,...)
{
	char		stamp[32];
	char		msg[2048];
	char	   *redacted = NULL;
	struct timespec ts;
	struct tm	tm;
	va_list		ap;

	if (level < fx_log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (invocation > 0 && fx_log_redact)
		redacted = fx_log_redact(invocation, msg);
	if (invocation > 0)
		fprintf(stderr, "%s.%03ld fx %s: invocation %lld: %s\n", stamp,
				ts.tv_nsec / 1000000, level_names[level], (long long) invocation,
				redacted ? redacted : msg);
	else
		fprintf(stderr, "%s.%03ld fx %s: %s\n", stamp, ts.tv_nsec / 1000000,
				level_names[level], msg);
	free(redacted);
}

void *
fx_xmalloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
fx_xcalloc(size_t n, size_t size)
{
	void	   *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
fx_xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (p == NULL)
		abort();
	return p;
}

char *
fx_xstrdup(const char *s)
{
	return strcpy(fx_xmalloc(strlen(s) + 1), s);
}

char *
fx_xasprintf(const char *fmt,...)
{
	va_list		ap;
	char	   *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

int64_t
fx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
fx_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + ts.tv_nsec;
}
