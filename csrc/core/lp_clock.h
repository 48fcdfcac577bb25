/* lp_clock.h - the time source. The engine never reads a clock itself: it
 * is handed an lp_clock_cb, so tests can drive time by hand. Times are
 * nanoseconds on a monotonic clock. Safe from any thread. */
#ifndef LP_CLOCK_H
#define LP_CLOCK_H

#include <stdint.h>
#include <time.h>

typedef uint64_t (*lp_clock_cb)(void *arg);

/* Returns CLOCK_MONOTONIC in nanoseconds (a vDSO call on Linux; no syscall).
 * arg is ignored. Inline, so hooks that call it directly pay no indirect
 * call. */
static inline uint64_t lp_clock_monotonic(void *arg) {
  struct timespec ts;
  (void)arg;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Returns CLOCK_REALTIME in nanoseconds since the Unix epoch. */
uint64_t lp_clock_realtime(void);

#endif
