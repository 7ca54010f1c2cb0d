/*
 * image_test.c: call fx_image_prepare once and print what it found.
 *
 * usage: image_test CACHE KEY [ARCHIVE]
 *
 * Without ARCHIVE the data pointer is NULL, so KEY must already be
 * unpacked.  Prints one "field=value" line per fx_image field (vectors
 * joined with "|", "<null>" for NULL), or "error: <why>" and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx_image.h"

static void
print_strv(const char *name, char **v)
{
	printf("%s=", name);
	if (v == NULL)
		printf("<null>");
	for (int i = 0; v != NULL && v[i] != NULL; i++)
		printf("%s%s", i > 0 ? "|" : "", v[i]);
	printf("\n");
}

static char *
read_all(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	size_t		cap = 0;
	size_t		n;

	*len = 0;
	if (f == NULL)
		return NULL;
	do
	{
		if (*len == cap)
		{
			cap = cap ? 2 * cap : 1 << 20;
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
	} while (n > 0);
	fclose(f);
	return buf;
}

int
main(int argc, char **argv)
{
	fx_image	img;
	char	   *why = NULL;
	char	   *data = NULL;
	size_t		len = 0;
	int			rc;

	if (argc != 3 && argc != 4)
	{
		fprintf(stderr, "usage: %s CACHE KEY [ARCHIVE]\n", argv[0]);
		return 2;
	}
	if (argc == 4 && (data = read_all(argv[3], &len)) == NULL)
	{
		fprintf(stderr, "cannot read %s: %s\n", argv[3], strerror(errno));
		return 2;
	}
	rc = fx_image_prepare(argv[1], argv[2], data, len, &img, &why);
	free(data);
	if (rc < 0)
	{
		printf("error: %s (%s)\n", why ? why : "(no message)", strerror(-rc));
		free(why);
		fx_image_free(&img);
		return 1;
	}
	printf("rootfs=%s\n", img.rootfs);
	print_strv("entrypoint", img.entrypoint);
	print_strv("cmd", img.cmd);
	print_strv("env", img.env);
	printf("workdir=%s\n", img.workdir ? img.workdir : "<null>");
	printf("user=%s\n", img.user ? img.user : "<null>");
	printf("uid=%ld\ngid=%ld\n", img.uid, img.gid);
	fx_image_free(&img);
	free(why);
	return 0;
}
