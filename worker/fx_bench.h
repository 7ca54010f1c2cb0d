/*
 * fx_bench.h: `fx bench-sandbox`, a hidden subcommand timing the sandbox
 * path of the worker (bench/sandbox.sh runs it).
 */
#ifndef FX_BENCH_H
#define FX_BENCH_H

int			fx_cli_bench_sandbox(int argc, char **argv);

#endif							/* FX_BENCH_H */
