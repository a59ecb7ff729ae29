/* Monotonic time helpers: every wait and every duration uses CLOCK_MONOTONIC. */
#ifndef RF_LIB_CLOCK_H
#define RF_LIB_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t rf__now_ns(void);
/* CPU time of the calling thread, in nanoseconds (CLOCK_THREAD_CPUTIME_ID). */
uint64_t rf__thread_cpu_ns(void);
/* A condition variable whose timed waits take rf__deadline's clock; 0 or pthread's error. */
int rf__cond_init_monotonic(pthread_cond_t *cond);
/* Absolute CLOCK_MONOTONIC deadline timeout_ns from now, for pthread_cond_timedwait. */
struct timespec rf__deadline(uint64_t timeout_ns);

static inline double rf__seconds(uint64_t ns)
{
	return (double)ns / 1e9;
}

#endif
