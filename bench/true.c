/*
 * true.c: the trivial function of bench/sandbox.sh: exits 0 at once.
 * Built static where the C library allows it, so that the runc bundle's
 * root file system needs nothing else.
 */
int
main(void)
{
	return 0;
}
