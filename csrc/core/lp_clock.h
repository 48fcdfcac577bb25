/* lp_clock.h - the time source. The engine never reads a clock itself: it
 * is handed an lp_clock_cb, so tests can drive time by hand. Times are
 * nanoseconds on a monotonic clock. Safe from any thread.
 *
 * Production uses lp_clock_now: the time stamp counter scaled to
 * nanoseconds where the kernel itself keeps CLOCK_MONOTONIC on it (so the
 * TSC is invariant and synchronized across CPUs), else CLOCK_MONOTONIC.
 * Reading the TSC is one instruction and no call; clock_gettime is a vDSO
 * call of some forty. */
#ifndef LP_CLOCK_H
#define LP_CLOCK_H

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define LP_HAVE_TSC 1
#include <x86intrin.h>
#endif

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

/* The TSC scale: ns = ns0 + ((tsc - tsc0) * mult) >> 32. mult is 0 while
 * the TSC is not in use. Written once by lp_clock_tsc_finish. */
typedef struct {
  uint64_t tsc0;
  uint64_t ns0;
  uint64_t mult;
} lp_tsc_t;

extern lp_tsc_t lp__tsc;

#ifdef LP_HAVE_TSC
/* The TSC in nanoseconds; only when lp__tsc.mult is not 0. The lfence keeps
 * the read after earlier loads (as the kernel's rdtsc_ordered does). */
static inline uint64_t lp_clock_tsc(void) {
  uint64_t d;
  _mm_lfence();
  d = __rdtsc() - lp__tsc.tsc0;
  return lp__tsc.ns0 + (uint64_t)(((unsigned __int128)d * lp__tsc.mult) >> 32);
}
#endif

/* Returns the production clock's time (see above). arg is ignored. */
static inline uint64_t lp_clock_now(void *arg) {
#ifdef LP_HAVE_TSC
  if (lp__tsc.mult != 0)
    return lp_clock_tsc();
#endif
  return lp_clock_monotonic(arg);
}

/* Starts calibrating the TSC against CLOCK_MONOTONIC, if the kernel's
 * clocksource is "tsc" and the CPU says its TSC is invariant; does nothing
 * otherwise, or if use is 0. Call once, before any other thread reads a
 * clock. */
void lp_clock_tsc_start(int use);

/* Ends the calibration begun by lp_clock_tsc_start, after sleeping if less
 * than min_ns have passed since (the longer, the more exact: 10 ms gives a
 * few parts per million). From then on lp_clock_now reads the TSC. Later
 * calls do nothing. Returns 1 if the TSC is in use. Same thread contract as
 * lp_clock_tsc_start. */
int lp_clock_tsc_finish(uint64_t min_ns);

/* Returns CLOCK_REALTIME in nanoseconds since the Unix epoch. */
uint64_t lp_clock_realtime(void);

#endif
