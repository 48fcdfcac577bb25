/* test_clock.c - lp_clock: the TSC clock against CLOCK_MONOTONIC. */
#include "lp_test.h"

#include <stdio.h>
#include <time.h>

#include "lp_clock.h"

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL);
}

/* Before calibration and when it is refused, lp_clock_now is
 * CLOCK_MONOTONIC. Then, if this machine's kernel keeps CLOCK_MONOTONIC on
 * the TSC, lp_clock_now reads the TSC: it must agree with CLOCK_MONOTONIC
 * to well within 1e-4 of the time elapsed, and never go back. */
static void test_tsc_agrees_with_monotonic(void **state) {
  uint64_t m0, c0, m1, c1, prev, now, d_mono, d_clock, err;
  int i, tsc;
  (void)state;
  assert_int_equal(lp__tsc.mult, 0);
  m0 = lp_clock_monotonic(NULL);
  c0 = lp_clock_now(NULL);
  m1 = lp_clock_monotonic(NULL);
  assert_true(c0 >= m0 && c0 <= m1);
  lp_clock_tsc_start(1);
  tsc = lp_clock_tsc_finish(10000000u);
  assert_int_equal(tsc, lp__tsc.mult != 0);
  assert_int_equal(lp_clock_tsc_finish(10000000u), tsc); /* once only */
  if (!tsc) {
    printf("clock: the kernel does not keep CLOCK_MONOTONIC on an invariant "
           "TSC here: monotonic only\n");
    return;
  }
  m0 = lp_clock_monotonic(NULL);
  c0 = lp_clock_now(NULL);
  assert_true(c0 > m0 ? c0 - m0 < 100000 : m0 - c0 < 100000);
  prev = c0;
  for (i = 0; i < 1000000; i++) {
    now = lp_clock_now(NULL);
    assert_true(now >= prev);
    prev = now;
  }
  sleep_ns(200000000u);
  m1 = lp_clock_monotonic(NULL);
  c1 = lp_clock_now(NULL);
  d_mono = m1 - m0;
  d_clock = c1 - c0;
  err = d_clock > d_mono ? d_clock - d_mono : d_mono - d_clock;
  printf("clock: tsc, %.3f ns per tick; %llu ns apart from CLOCK_MONOTONIC "
         "over %llu ns\n",
         (double)lp__tsc.mult / 4294967296.0, (unsigned long long)err,
         (unsigned long long)d_mono);
  assert_true(err < 20000 + d_mono / 10000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tsc_agrees_with_monotonic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
