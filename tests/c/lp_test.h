/* lp_test.h - shared helpers for the core's cmocka tests: the cmocka
 * includes, a fake clock and a fault-injecting allocator.
 *
 * Each test executable is a single translation unit, so everything here is
 * static. The allocator counts every allocating call the core makes through
 * lp__realloc (frees, i.e. size 0, are counted separately and never fail);
 * a test arms it to fail the N-th allocation (0-based) or every allocation
 * from the N-th on, and restores the C library allocator with
 * lp_test_alloc_reset(). */
#ifndef LP_TEST_H
#define LP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lp_alloc.h"
#include "lp_error.h"

#define LP_TEST_UNUSED __attribute__((unused))

/* ---- fake clock ---- */

/* The engine's clock callback: returns *(uint64_t *)arg, which the test
 * sets by hand. */
static LP_TEST_UNUSED uint64_t lp_test_clock(void *arg) {
  return *(const uint64_t *)arg;
}

/* ---- fault-injecting allocator ---- */

enum { LP_TEST_NEVER = -1 };

static struct {
  long allocs;    /* allocating calls seen since the last reset/arm */
  long frees;     /* freeing calls (size 0) seen since the last reset/arm */
  long fail_at;   /* fail only this allocating call; LP_TEST_NEVER: none */
  long fail_from; /* fail this and every later allocating call */
  long failed;    /* allocating calls refused */
} lp_test_alloc;

static LP_TEST_UNUSED void *lp_test_realloc(void *ptr, size_t size) {
  long n;
  if (size == 0) {
    lp_test_alloc.frees++;
    free(ptr);
    return NULL;
  }
  n = lp_test_alloc.allocs++;
  if (n == lp_test_alloc.fail_at ||
      (lp_test_alloc.fail_from != LP_TEST_NEVER && n >= lp_test_alloc.fail_from)) {
    lp_test_alloc.failed++;
    return NULL;
  }
  return realloc(ptr, size);
}

/* Installs the counting allocator with no failure armed and zero counts. */
static LP_TEST_UNUSED void lp_test_alloc_count(void) {
  lp_test_alloc.allocs = 0;
  lp_test_alloc.frees = 0;
  lp_test_alloc.failed = 0;
  lp_test_alloc.fail_at = LP_TEST_NEVER;
  lp_test_alloc.fail_from = LP_TEST_NEVER;
  lp_set_allocator(lp_test_realloc);
}

/* Fails only the n-th (0-based) allocating call from now on. */
static LP_TEST_UNUSED void lp_test_alloc_fail_at(long n) {
  lp_test_alloc_count();
  lp_test_alloc.fail_at = n;
}

/* Fails the n-th (0-based) allocating call from now on and all later ones:
 * "succeeds n times, then fails". */
static LP_TEST_UNUSED void lp_test_alloc_fail_from(long n) {
  lp_test_alloc_count();
  lp_test_alloc.fail_from = n;
}

/* Restores the C library's allocator. */
static LP_TEST_UNUSED void lp_test_alloc_reset(void) {
  lp_set_allocator(NULL);
  lp_test_alloc.fail_at = LP_TEST_NEVER;
  lp_test_alloc.fail_from = LP_TEST_NEVER;
}

/* cmocka teardown that restores the allocator even when a test failed
 * halfway with a failure armed. */
static LP_TEST_UNUSED int lp_test_teardown_alloc(void **state) {
  (void)state;
  lp_test_alloc_reset();
  return 0;
}

#endif
