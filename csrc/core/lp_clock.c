#include "lp_clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifdef LP_HAVE_TSC
#include <cpuid.h>
#endif

lp_tsc_t lp__tsc;

uint64_t lp_clock_realtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#ifdef LP_HAVE_TSC

typedef struct {
  uint64_t tsc;
  uint64_t ns;
} pair_t;

static pair_t start_pair; /* tsc 0: no calibration under way */
static int finished;

/* The kernel keeps CLOCK_MONOTONIC on the TSC only if it found the TSC
 * stable and synchronized across CPUs. */
static int kernel_uses_tsc(void) {
  char buf[32] = {0};
  FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
                  "current_clocksource",
                  "r");
  if (f == NULL)
    return 0;
  if (fgets(buf, sizeof(buf), f) == NULL)
    buf[0] = '\0';
  fclose(f);
  return strcmp(buf, "tsc\n") == 0;
}

static int invariant_tsc(void) {
  unsigned a, b, c, d;
  return __get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8)) != 0;
}

/* A TSC reading and the CLOCK_MONOTONIC time at it: the midpoint of the
 * tightest of a few bracketing pairs of clock_gettime calls. */
static pair_t read_pair(void) {
  pair_t best = {0, 0};
  uint64_t width = UINT64_MAX;
  int i;
  for (i = 0; i < 16; i++) {
    uint64_t a = lp_clock_monotonic(NULL), c, b;
    _mm_lfence();
    c = __rdtsc();
    _mm_lfence();
    b = lp_clock_monotonic(NULL);
    if (b - a < width) {
      width = b - a;
      best.tsc = c;
      best.ns = a + (b - a) / 2;
    }
  }
  return best;
}

void lp_clock_tsc_start(int use) {
  if (!use || finished || start_pair.tsc != 0 || !invariant_tsc() ||
      !kernel_uses_tsc())
    return;
  start_pair = read_pair();
}

int lp_clock_tsc_finish(uint64_t min_ns) {
  pair_t end;
  uint64_t dt, dc;
  if (finished || start_pair.tsc == 0)
    return lp__tsc.mult != 0;
  finished = 1;
  dt = lp_clock_monotonic(NULL) - start_pair.ns;
  if (dt < min_ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)((min_ns - dt) / 1000000000u);
    ts.tv_nsec = (long)((min_ns - dt) % 1000000000u);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
  }
  end = read_pair();
  dt = end.ns - start_pair.ns;
  dc = end.tsc - start_pair.tsc;
  /* A TSC between 100 MHz and 20 GHz, or none. */
  if (end.tsc <= start_pair.tsc || dc < dt / 10 || dc > dt * 20)
    return 0;
  lp__tsc.tsc0 = end.tsc;
  lp__tsc.ns0 = end.ns;
  lp__tsc.mult = (uint64_t)(((unsigned __int128)dt << 32) / dc);
  return 1;
}

#else

void lp_clock_tsc_start(int use) { (void)use; }

int lp_clock_tsc_finish(uint64_t min_ns) {
  (void)min_ns;
  return 0;
}

#endif
