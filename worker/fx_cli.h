/*
 * fx_cli.h: the `fx` subcommands other than `worker`.
 */
#ifndef FX_CLI_H
#define FX_CLI_H

int			fx_cli_up(int argc, char **argv);
int			fx_cli_down(int argc, char **argv);
int			fx_cli_deploy(int argc, char **argv);
int			fx_cli_invoke(int argc, char **argv);
int			fx_cli_logs(int argc, char **argv);
int			fx_cli_ls(int argc, char **argv);
int			fx_cli_ps(int argc, char **argv);
int			fx_cli_wf(int argc, char **argv);
int			fx_cli_psql(int argc, char **argv);

/* The conninfo the CLI uses: --db, FX_DB, PG* variables, or fx up's cluster. */
char	   *fx_cli_conninfo(const char *db_opt);

/*
 * --db CONNINFO must hold no password, since every user of the host can
 * read command lines: else an error on stderr and exit(2).
 */
void		fx_cli_check_db(const char *db_opt);

/*
 * --db-file FILE: the conninfo in FILE, which must not be readable by
 * group or others if it holds a password; else an error and exit(2).
 */
char	   *fx_cli_db_file(const char *path);

/* The embedded default's directory (FX_HOME). */
char	   *fx_home(void);

/* Parse "30s", "500ms", "2m", "1h" or seconds; -1 if malformed. */
long		fx_parse_duration_ms(const char *s);

#endif							/* FX_CLI_H */
