/* test_table.c - lp_table: registration, line arrays, growth with
 * retirement, clearing, kind names and allocation failure. */
#include "lp_test.h"

#include <stdio.h>

#include "lp_table.h"

#define K1 ((uintptr_t)0x7f0000001000u)
#define K2 ((uintptr_t)0x7f0000002000u)

/* Allocations still held: granted minus freed. */
static long live_allocs(void) {
  return lp_test_alloc.allocs - lp_test_alloc.failed - lp_test_alloc.frees;
}

static void assert_line(const lp_line_t *ln, uint64_t hits, uint64_t time,
                        uint64_t await, uint64_t max) {
  assert_non_null(ln);
  assert_int_equal(ln->hits, hits);
  assert_int_equal(ln->time, time);
  assert_int_equal(ln->await, await);
  assert_int_equal(ln->max, max);
}

static void test_add_basic(void **state) {
  lp_table_t t;
  lp_func_t *f = NULL, *g = NULL;
  char file[] = "pkg/mod.py", name[] = "Klass.method";
  uint32_t i;
  (void)state;
  lp_table_init(&t);
  assert_int_equal(t.nfuncs, 0);
  assert_null(lp_table_find(&t, K1));

  assert_int_equal(lp_table_add(&t, K1, file, name, 9, 10, 14,
                                LP_KIND_COROUTINE, &f),
                   0);
  assert_non_null(f);
  assert_int_equal(t.nfuncs, 1);
  assert_ptr_equal(t.funcs[0], f);
  assert_ptr_equal(lp_table_find(&t, K1), f);
  assert_int_equal(f->base, 10);
  assert_int_equal(f->nlines, 5);
  assert_int_equal(f->firstlineno, 9);
  assert_int_equal(f->kind, LP_KIND_COROUTINE);
  assert_int_equal(f->key, K1);
  assert_null(f->retired);
  for (i = 0; i < 5; i++)
    assert_line(&f->lines[i], 0, 0, 0, 0);

  /* The names are copies. */
  assert_ptr_not_equal(f->file, file);
  assert_ptr_not_equal(f->name, name);
  file[0] = 'X';
  name[0] = 'X';
  assert_string_equal(f->file, "pkg/mod.py");
  assert_string_equal(f->name, "Klass.method");

  /* A one-line function; an empty name is allowed. */
  assert_int_equal(
      lp_table_add(&t, K2, "b.py", "", 1, 1, 1, LP_KIND_ASYNC_GENERATOR, &g),
      0);
  assert_int_equal(t.nfuncs, 2);
  assert_ptr_equal(t.funcs[1], g);
  assert_int_equal(g->nlines, 1);
  assert_int_equal(g->base, 1);
  assert_string_equal(g->name, "");
  assert_ptr_equal(lp_table_find(&t, K2), g);
  assert_ptr_equal(lp_table_find(&t, K1), f);
  assert_null(lp_table_find(&t, K1 + 16));
  assert_null(lp_table_find(&t, 0));

  lp_table_close(&t);
  assert_int_equal(t.nfuncs, 0);
  assert_null(t.funcs);
  assert_null(lp_table_find(&t, K1));
  /* Reusable after close. */
  assert_int_equal(lp_table_add(&t, K1, "c.py", "h", 1, 3, 4,
                                LP_KIND_FUNCTION, &f),
                   0);
  assert_int_equal(t.nfuncs, 1);
  lp_table_close(&t);
}

static void test_add_idempotent(void **state) {
  lp_table_t t;
  lp_func_t *f = NULL, *g = NULL;
  (void)state;
  lp_table_init(&t);
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, 2, 4, LP_KIND_GENERATOR, &f), 0);
  f->lines[0].hits = 3;
  /* Same key: the existing function, unchanged, whatever else is passed
   * (even arguments that would otherwise be invalid), and no allocation. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(
      lp_table_add(&t, K1, "other.py", "g", 7, 100, 200, LP_KIND_FUNCTION, &g),
      0);
  assert_ptr_equal(g, f);
  g = NULL;
  assert_int_equal(lp_table_add(&t, K1, NULL, NULL, 0, 5, 1, (lp_kind_t)9, &g),
                   0);
  assert_ptr_equal(g, f);
  assert_int_equal(lp_test_alloc.allocs, 0);
  lp_test_alloc_reset();
  assert_int_equal(t.nfuncs, 1);
  assert_string_equal(f->file, "a.py");
  assert_string_equal(f->name, "f");
  assert_int_equal(f->firstlineno, 1);
  assert_int_equal(f->base, 2);
  assert_int_equal(f->nlines, 3);
  assert_int_equal(f->kind, LP_KIND_GENERATOR);
  assert_int_equal(f->lines[0].hits, 3);

  /* Key 0: not indexed, so every add registers a new function. */
  assert_int_equal(
      lp_table_add(&t, 0, "a.py", "f", 1, 2, 4, LP_KIND_FUNCTION, &g), 0);
  assert_ptr_not_equal(g, f);
  assert_int_equal(g->key, 0);
  assert_int_equal(
      lp_table_add(&t, 0, "a.py", "f", 1, 2, 4, LP_KIND_FUNCTION, &f), 0);
  assert_ptr_not_equal(g, f);
  assert_int_equal(t.nfuncs, 3);
  assert_int_equal(t.index.count, 1);
  lp_table_close(&t);
}

static void test_add_einval(void **state) {
  lp_table_t t;
  lp_func_t *f = (lp_func_t *)0x1; /* must stay untouched */
  (void)state;
  lp_table_init(&t);
  /* Bad kinds. */
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, 1, 2, (lp_kind_t)-1, &f), LP_EINVAL);
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, 1, 2, (lp_kind_t)4, &f), LP_EINVAL);
  /* last < first. */
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, 5, 4, LP_KIND_FUNCTION, &f),
      LP_EINVAL);
  /* Lines start at 1. */
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, 0, 4, LP_KIND_FUNCTION, &f),
      LP_EINVAL);
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, -3, 4, LP_KIND_FUNCTION, &f),
      LP_EINVAL);
  /* A range over 10 million lines: [1, 10000001] holds 10000001. */
  assert_int_equal(lp_table_add(&t, K1, "a.py", "f", 1, 1, 10000001,
                                LP_KIND_FUNCTION, &f),
                   LP_EINVAL);
  assert_int_equal(lp_table_add(&t, K1, "a.py", "f", 1, 1, INT32_MAX,
                                LP_KIND_FUNCTION, &f),
                   LP_EINVAL);
  /* NULL names. */
  assert_int_equal(
      lp_table_add(&t, K1, NULL, "f", 1, 1, 2, LP_KIND_FUNCTION, &f),
      LP_EINVAL);
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", NULL, 1, 1, 2, LP_KIND_FUNCTION, &f),
      LP_EINVAL);
  assert_ptr_equal(f, (lp_func_t *)0x1);
  assert_int_equal(t.nfuncs, 0);
  assert_int_equal(t.index.count, 0);
  assert_null(lp_table_find(&t, K1));

  /* Exactly 10 million lines passes validation: with every allocation
   * failing it reports LP_ENOMEM (nothing is really allocated), which
   * proves the limit is not off by one. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_table_add(&t, K1, "a.py", "f", 1, 1, 10000000,
                                LP_KIND_FUNCTION, &f),
                   LP_ENOMEM);
  assert_int_equal(lp_table_add(&t, K1, "a.py", "f", 1, 5, 10000004,
                                LP_KIND_FUNCTION, &f),
                   LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(t.nfuncs, 0);
  lp_table_close(&t);
}

static void test_many_funcs(void **state) {
  lp_table_t t;
  lp_func_t *f;
  uintptr_t i;
  char name[32];
  (void)state;
  lp_table_init(&t);
  for (i = 0; i < 40; i++) {
    snprintf(name, sizeof(name), "f%d", (int)i);
    assert_int_equal(lp_table_add(&t, K1 + 64 * i, "m.py", name, (int32_t)i + 1,
                                  (int32_t)i + 1, (int32_t)i + 3,
                                  LP_KIND_FUNCTION, &f),
                     0);
  }
  assert_int_equal(t.nfuncs, 40);
  assert_int_equal(t.cap, 64); /* 16 -> 32 -> 64 */
  for (i = 0; i < 40; i++) {
    /* In order of registration. */
    snprintf(name, sizeof(name), "f%d", (int)i);
    assert_string_equal(t.funcs[i]->name, name);
    assert_int_equal(t.funcs[i]->base, (int32_t)i + 1);
    assert_ptr_equal(lp_table_find(&t, K1 + 64 * i), t.funcs[i]);
  }
  lp_table_close(&t);
}

static void test_func_line(void **state) {
  lp_table_t t;
  lp_func_t *f;
  (void)state;
  lp_table_init(&t);
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 9, 10, 12, LP_KIND_FUNCTION, &f), 0);
  assert_ptr_equal(lp_func_line(f, 10), &f->lines[0]);
  assert_ptr_equal(lp_func_line(f, 11), &f->lines[1]);
  assert_ptr_equal(lp_func_line(f, 12), &f->lines[2]);
  assert_null(lp_func_line(f, 9));
  assert_null(lp_func_line(f, 13));
  assert_null(lp_func_line(f, 0));
  assert_null(lp_func_line(f, -1));
  assert_null(lp_func_line(f, INT32_MIN));
  assert_null(lp_func_line(f, INT32_MAX));
  /* lp_func_line_grow returns in-range counters without growing. */
  lp_test_alloc_fail_from(0);
  assert_ptr_equal(lp_func_line_grow(f, 11), &f->lines[1]);
  /* ... and NULL when it would have to grow but cannot. */
  assert_null(lp_func_line_grow(f, 13));
  assert_null(lp_func_line_grow(f, 0));
  lp_test_alloc_reset();
  assert_int_equal(f->nlines, 3);
  lp_table_close(&t);
}

static void set_line(lp_line_t *ln, uint64_t hits, uint64_t time,
                     uint64_t await, uint64_t max) {
  ln->hits = hits;
  ln->time = time;
  ln->await = await;
  ln->max = max;
}

static void test_reserve(void **state) {
  lp_table_t t;
  lp_func_t *f;
  lp_line_t *out = NULL, *old1, *old2;
  lp__retired_t *r1;
  int32_t l;
  (void)state;
  lp_table_init(&t);
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 10, 10, 12, LP_KIND_FUNCTION, &f), 0);
  set_line(lp_func_line(f, 10), 1, 2, 3, 4);
  set_line(lp_func_line(f, 11), 5, 50, 7, 30);
  set_line(lp_func_line(f, 12), 9, 90, 0, 80);
  old1 = f->lines;

  /* In range: the existing counters; nothing allocated or retired. */
  lp_test_alloc_count();
  assert_int_equal(lp_func_reserve(f, 11, &out), 0);
  assert_ptr_equal(out, &f->lines[1]);
  assert_int_equal(lp_test_alloc.allocs, 0);
  assert_null(f->retired);

  /* Upward to 20: [10, 20], counters kept at their lines. */
  lp_test_alloc_count();
  assert_int_equal(lp_func_reserve(f, 20, &out), 0);
  assert_int_equal(lp_test_alloc.allocs, 2); /* new array + retire record */
  assert_int_equal(lp_test_alloc.frees, 0);  /* the old array is retired */
  lp_test_alloc_reset();
  assert_int_equal(f->base, 10);
  assert_int_equal(f->nlines, 11);
  assert_ptr_not_equal(f->lines, old1);
  assert_ptr_equal(out, &f->lines[10]);
  assert_ptr_equal(lp_func_line(f, 20), out);
  assert_line(lp_func_line(f, 10), 1, 2, 3, 4);
  assert_line(lp_func_line(f, 11), 5, 50, 7, 30);
  assert_line(lp_func_line(f, 12), 9, 90, 0, 80);
  for (l = 13; l <= 20; l++)
    assert_line(lp_func_line(f, l), 0, 0, 0, 0);
  assert_null(lp_func_line(f, 21));
  assert_null(lp_func_line(f, 9));
  assert_non_null(f->retired);
  r1 = f->retired;
  /* The retired array is still readable (ASan would flag a freed one). */
  assert_line(&old1[1], 5, 50, 7, 30);
  set_line(lp_func_line(f, 20), 2, 20, 0, 20);

  /* Downward to 5: [5, 20]. */
  old2 = f->lines;
  lp_test_alloc_count();
  assert_int_equal(lp_func_reserve(f, 5, &out), 0);
  assert_int_equal(lp_test_alloc.allocs, 2);
  assert_int_equal(lp_test_alloc.frees, 0);
  lp_test_alloc_reset();
  assert_int_equal(f->base, 5);
  assert_int_equal(f->nlines, 16);
  assert_ptr_equal(out, &f->lines[0]);
  assert_ptr_equal(lp_func_line(f, 5), out);
  assert_line(lp_func_line(f, 10), 1, 2, 3, 4);
  assert_line(lp_func_line(f, 11), 5, 50, 7, 30);
  assert_line(lp_func_line(f, 12), 9, 90, 0, 80);
  assert_line(lp_func_line(f, 20), 2, 20, 0, 20);
  for (l = 5; l <= 9; l++)
    assert_line(lp_func_line(f, l), 0, 0, 0, 0);
  assert_null(lp_func_line(f, 4));
  assert_null(lp_func_line(f, 21));
  assert_ptr_not_equal(f->retired, r1);
  assert_line(&old1[0], 1, 2, 3, 4);
  assert_line(&old2[10], 2, 20, 0, 20);

  /* Far downward to line 1 and upward with a gap. */
  assert_int_equal(lp_func_reserve(f, 1, &out), 0);
  assert_int_equal(f->base, 1);
  assert_int_equal(f->nlines, 20);
  assert_int_equal(lp_func_reserve(f, 1000, &out), 0);
  assert_int_equal(f->base, 1);
  assert_int_equal(f->nlines, 1000);
  assert_line(lp_func_line(f, 11), 5, 50, 7, 30);
  assert_line(lp_func_line(f, 20), 2, 20, 0, 20);
  /* lp_table_close frees the retired arrays too (ASan checks no leak). */
  lp_table_close(&t);
}

static void test_reserve_errors(void **state) {
  lp_table_t t;
  lp_func_t *f;
  lp_line_t *out = (lp_line_t *)0x1, *lines;
  long n;
  (void)state;
  lp_table_init(&t);
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 5, 5, 20, LP_KIND_FUNCTION, &f), 0);
  set_line(lp_func_line(f, 7), 1, 1, 1, 1);
  lines = f->lines;

  assert_int_equal(lp_func_reserve(f, 0, &out), LP_EINVAL);
  assert_int_equal(lp_func_reserve(f, -1, &out), LP_EINVAL);
  assert_int_equal(lp_func_reserve(f, INT32_MIN, &out), LP_EINVAL);
  /* [5, 10000005] would hold 10000001 lines. */
  assert_int_equal(lp_func_reserve(f, 10000005, &out), LP_EINVAL);
  assert_int_equal(lp_func_reserve(f, INT32_MAX, &out), LP_EINVAL);
  /* [5, 10000004] holds exactly 10 million: allowed (LP_ENOMEM here only
   * because every allocation is made to fail). */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_func_reserve(f, 10000004, &out), LP_ENOMEM);
  lp_test_alloc_reset();

  /* Each of the two allocations failing, alone or with the other. */
  for (n = 0; n < 4; n++) {
    if (n < 2)
      lp_test_alloc_fail_at(n);
    else
      lp_test_alloc_fail_from(n - 2);
    assert_int_equal(lp_func_reserve(f, n % 2 ? 30 : 2, &out), LP_ENOMEM);
    assert_int_equal(lp_test_alloc.allocs, 2);
    assert_int_equal(live_allocs(), 0);
    lp_test_alloc_reset();
  }
  assert_ptr_equal(out, (lp_line_t *)0x1);
  assert_ptr_equal(f->lines, lines);
  assert_int_equal(f->base, 5);
  assert_int_equal(f->nlines, 16);
  assert_null(f->retired);
  assert_line(lp_func_line(f, 7), 1, 1, 1, 1);
  lp_table_close(&t);
}

static void test_clear(void **state) {
  lp_table_t t;
  lp_func_t *f, *g;
  int32_t l;
  (void)state;
  lp_table_init(&t);
  lp_table_clear(&t); /* empty table: nothing to do */
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, 1, 3, LP_KIND_FUNCTION, &f), 0);
  assert_int_equal(
      lp_table_add(&t, K2, "b.py", "g", 10, 10, 11, LP_KIND_GENERATOR, &g), 0);
  set_line(lp_func_line(f, 1), 1, 2, 3, 4);
  set_line(lp_func_line(f, 3), 5, 6, 7, 8);
  set_line(lp_func_line(g, 11), 9, 10, 11, 12);
  assert_non_null(lp_func_line_grow(g, 15));
  set_line(lp_func_line(g, 15), 1, 1, 1, 1);
  lp_table_clear(&t);
  for (l = 1; l <= 3; l++)
    assert_line(lp_func_line(f, l), 0, 0, 0, 0);
  for (l = 10; l <= 15; l++)
    assert_line(lp_func_line(g, l), 0, 0, 0, 0);
  /* The functions stay registered, with their ranges and names. */
  assert_int_equal(t.nfuncs, 2);
  assert_ptr_equal(lp_table_find(&t, K1), f);
  assert_ptr_equal(lp_table_find(&t, K2), g);
  assert_int_equal(g->base, 10);
  assert_int_equal(g->nlines, 6);
  assert_string_equal(g->name, "g");
  lp_table_close(&t);
}

static void test_kind_name(void **state) {
  (void)state;
  assert_string_equal(lp_kind_name(LP_KIND_FUNCTION), "function");
  assert_string_equal(lp_kind_name(LP_KIND_GENERATOR), "generator");
  assert_string_equal(lp_kind_name(LP_KIND_COROUTINE), "coroutine");
  assert_string_equal(lp_kind_name(LP_KIND_ASYNC_GENERATOR), "async_generator");
  assert_string_equal(lp_kind_name(0), "function");
  assert_string_equal(lp_kind_name(3), "async_generator");
  assert_null(lp_kind_name(-1));
  assert_null(lp_kind_name(4));
  assert_null(lp_kind_name(1000));
  assert_null(lp_kind_name(INT32_MIN));
}

/* The table after a failed add: exactly the functions registered before. */
static void check_table(const lp_table_t *t, uint32_t nfuncs,
                        uint32_t nindexed) {
  assert_int_equal(t->nfuncs, nfuncs);
  assert_int_equal(t->index.count, nindexed);
  assert_null(lp_table_find(t, K2));
}

static void test_add_oom(void **state) {
  /* On an empty table, an add with a key makes 7 allocations in order:
   * the function array, the function, its line array, the file name, the
   * function name, and the index's two arrays. */
  enum { NALLOC_FIRST = 7, NALLOC_LATER = 4, NALLOC_NOKEY = 5 };
  lp_table_t t;
  lp_func_t *f, *g;
  long n, mode;
  (void)state;

  lp_table_init(&t);
  lp_test_alloc_count();
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, 1, 3, LP_KIND_FUNCTION, &f), 0);
  assert_int_equal(lp_test_alloc.allocs, NALLOC_FIRST);
  lp_test_alloc_reset();
  lp_table_close(&t);

  for (mode = 0; mode < 2; mode++) {
    for (n = 0; n < NALLOC_FIRST; n++) {
      lp_table_init(&t);
      f = (lp_func_t *)0x1;
      if (mode == 0)
        lp_test_alloc_fail_at(n);
      else
        lp_test_alloc_fail_from(n);
      assert_int_equal(
          lp_table_add(&t, K2, "a.py", "f", 1, 1, 3, LP_KIND_FUNCTION, &f),
          LP_ENOMEM);
      /* Only the grown function array (when it was granted) stays. */
      assert_int_equal(live_allocs(), n == 0 ? 0 : 1);
      lp_test_alloc_reset();
      assert_ptr_equal(f, (lp_func_t *)0x1);
      check_table(&t, 0, 0);
      /* Memory is back: the same add succeeds. */
      assert_int_equal(
          lp_table_add(&t, K2, "a.py", "f", 1, 1, 3, LP_KIND_FUNCTION, &f), 0);
      assert_int_equal(t.nfuncs, 1);
      assert_ptr_equal(lp_table_find(&t, K2), f);
      lp_table_close(&t);
    }
  }

  /* A second add: the array and the index have room, so only the
   * function, its lines and its two names are allocated. */
  for (mode = 0; mode < 2; mode++) {
    for (n = 0; n < NALLOC_LATER; n++) {
      lp_table_init(&t);
      assert_int_equal(
          lp_table_add(&t, K1, "a.py", "f", 1, 1, 3, LP_KIND_FUNCTION, &f), 0);
      set_line(lp_func_line(f, 2), 4, 3, 2, 1);
      if (mode == 0)
        lp_test_alloc_fail_at(n);
      else
        lp_test_alloc_fail_from(n);
      assert_int_equal(
          lp_table_add(&t, K2, "b.py", "g", 5, 5, 9, LP_KIND_GENERATOR, &g),
          LP_ENOMEM);
      assert_true(lp_test_alloc.allocs <= NALLOC_LATER);
      assert_int_equal(live_allocs(), 0);
      lp_test_alloc_reset();
      check_table(&t, 1, 1);
      assert_ptr_equal(t.funcs[0], f);
      assert_ptr_equal(lp_table_find(&t, K1), f);
      assert_line(lp_func_line(f, 2), 4, 3, 2, 1);
      lp_table_close(&t);
    }
  }
  lp_table_init(&t);
  assert_int_equal(
      lp_table_add(&t, K1, "a.py", "f", 1, 1, 3, LP_KIND_FUNCTION, &f), 0);
  lp_test_alloc_count();
  assert_int_equal(
      lp_table_add(&t, K2, "b.py", "g", 5, 5, 9, LP_KIND_GENERATOR, &g), 0);
  assert_int_equal(lp_test_alloc.allocs, NALLOC_LATER);
  lp_test_alloc_reset();
  lp_table_close(&t);

  /* Key 0 is not indexed: 5 allocations on an empty table. */
  for (n = 0; n < NALLOC_NOKEY; n++) {
    lp_table_init(&t);
    lp_test_alloc_fail_at(n);
    assert_int_equal(
        lp_table_add(&t, 0, "a.py", "f", 1, 1, 3, LP_KIND_FUNCTION, &f),
        LP_ENOMEM);
    assert_int_equal(lp_test_alloc.allocs, n == 0 || n == 1 ? n + 1 : NALLOC_NOKEY);
    lp_test_alloc_reset();
    check_table(&t, 0, 0);
    lp_table_close(&t);
  }
  lp_table_init(&t);
  lp_test_alloc_count();
  assert_int_equal(
      lp_table_add(&t, 0, "a.py", "f", 1, 1, 3, LP_KIND_FUNCTION, &f), 0);
  assert_int_equal(lp_test_alloc.allocs, NALLOC_NOKEY);
  lp_test_alloc_reset();
  lp_table_close(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_basic),
      cmocka_unit_test_teardown(test_add_idempotent, lp_test_teardown_alloc),
      cmocka_unit_test_teardown(test_add_einval, lp_test_teardown_alloc),
      cmocka_unit_test(test_many_funcs),
      cmocka_unit_test_teardown(test_func_line, lp_test_teardown_alloc),
      cmocka_unit_test_teardown(test_reserve, lp_test_teardown_alloc),
      cmocka_unit_test_teardown(test_reserve_errors, lp_test_teardown_alloc),
      cmocka_unit_test(test_clear),
      cmocka_unit_test(test_kind_name),
      cmocka_unit_test_teardown(test_add_oom, lp_test_teardown_alloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
