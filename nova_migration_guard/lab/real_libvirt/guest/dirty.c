/*
 * Guest memory dirtier for the real hypervisor tests.
 *
 *   dirty REGION_MB [RATE_MB_PER_S [SPIN [SECONDS]]]
 *
 * Writes one byte in every 4 KiB page of a REGION_MB region, page after page
 * and round after round, so live migration has to send every page again
 * after each round.  RATE_MB_PER_S caps the pace (0: no cap).  SPIN is a
 * busy loop per page: it makes the dirty rate depend on vCPU time, so that
 * auto-converge's vCPU throttling slows it down.  SECONDS: stop writing
 * after that long (0: never), a guest that calms down by itself.  Prints
 * its achieved rate on stdout every 5 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define PAGES_PER_MB 256UL

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long region_mb = argc > 1 ? atol(argv[1]) : 0;
    long rate = argc > 2 ? atol(argv[2]) : 0;
    long spin = argc > 3 ? atol(argv[3]) : 0;
    long seconds = argc > 4 ? atol(argv[4]) : 0;
    size_t pages, page = 0;
    unsigned char *mem;
    unsigned long round = 0, mb_done = 0, mb_window = 0;
    double start, window_start;

    if (region_mb <= 0)
        return 0;
    pages = (size_t)region_mb * PAGES_PER_MB;
    mem = malloc(pages * PAGE);
    if (mem == NULL) {
        perror("dirty: malloc");
        return 1;
    }
    /* Fault every page in first: the region is then fully resident. */
    memset(mem, 1, pages * PAGE);
    printf("dirty: region=%ld MiB rate=%ld MiB/s spin=%ld for=%ld s\n",
           region_mb, rate, spin, seconds);
    fflush(stdout);

    start = window_start = now();
    for (;;) {
        for (unsigned long i = 0; i < PAGES_PER_MB; i++) {
            /* A different value every round: the page really changes. */
            mem[page * PAGE] = (unsigned char)(round + page);
            for (volatile long s = 0; s < spin; s++)
                ;
            if (++page == pages) {
                page = 0;
                round++;
            }
        }
        mb_done++;
        mb_window++;
        if (rate > 0) {
            /* Sleep until the pace is back on the capped schedule. */
            double due = start + (double)mb_done / rate, t = now();

            if (due > t)
                usleep((useconds_t)((due - t) * 1e6));
        }
        double t = now();

        if (seconds > 0 && t - start >= seconds) {
            printf("dirty: stopped after %ld s\n", seconds);
            fflush(stdout);
            for (;;)
                pause();
        }
        if (t - window_start >= 5) {
            printf("dirty: %.0f MiB/s\n", mb_window / (t - window_start));
            fflush(stdout);
            mb_window = 0;
            window_start = t;
        }
    }
}
