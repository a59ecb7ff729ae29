/* Monotonic time helpers: every wait and every duration uses CLOCK_MONOTONIC. */
#ifndef RF_LIB_CLOCK_H
#define RF_LIB_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t rf__now_ns(void);
/* CPU time of the calling thread, in nanoseconds (CLOCK_THREAD_CPUTIME_ID). */
uint64_t rf__thread_cpu_ns(void);
/* Absolute CLOCK_MONOTONIC deadline timeout_ns from now, for pthread_cond_timedwait. */
struct timespec rf__deadline(uint64_t timeout_ns);

static inline double rf__seconds(uint64_t ns)
{
	return (double)ns / 1e9;
}

#endif
