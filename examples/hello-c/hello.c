/*-------------------------------------------------------------------------
 *
 * hello.c
 *		Session-mode fx function in C, using the SDK in include/fx.h.
 *
 * Args {"name": "x"} give {"greeting":"hello x","lang":"c","invocation":ID};
 * {"fail": true} makes the invocation fail without retries.  One process
 * serves many invocations; each logs one line on stderr.
 *
 *	fx deploy hello-c examples/hello-c --cmd ./hello --mode session
 *	fx invoke hello-c '{"name":"x"}'
 *
 *-------------------------------------------------------------------------
 */
#include <fx.h>

static cJSON *
hello(fx_ctx *ctx, const cJSON *args)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(args, "name");
	const char *who = cJSON_IsString(name) ? name->valuestring : "world";
	cJSON	   *result;
	char	   *greeting;

	fprintf(stderr, "hello-c: invocation %lld attempt %d for %s\n",
			fx_invocation_id(ctx), fx_attempt(ctx), who);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "fail")))
	{
		fx_fail(ctx, "asked to fail", "The args had \"fail\": true.", 0);
		return NULL;
	}

	if ((greeting = malloc(strlen(who) + sizeof("hello "))) == NULL)
	{
		fx_fail(ctx, "out of memory", NULL, 1);
		return NULL;
	}
	strcpy(greeting, "hello ");
	strcat(greeting, who);

	result = cJSON_CreateObject();
	cJSON_AddStringToObject(result, "greeting", greeting);
	cJSON_AddStringToObject(result, "lang", "c");
	cJSON_AddNumberToObject(result, "invocation",
							(double) fx_invocation_id(ctx));
	free(greeting);
	return result;
}

int
main(void)
{
	return fx_main(hello);
}
