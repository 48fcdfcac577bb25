/* test_engine.c - lp_engine: attribution of active and await time to
 * lines, driven by synthetic event sequences with hand-picked timestamps.
 * Every expected number is worked out by hand in the comments. */
#include "lp_test.h"

#include "lp_engine.h"

/* Keys the backend would pass: code objects for functions, generator
 * objects for parking. */
#define KF ((uintptr_t)0x7f0000010000u)
#define KG ((uintptr_t)0x7f0000020000u)
#define KC ((uintptr_t)0x7f0000030000u)
#define KD ((uintptr_t)0x7f0000040000u)
#define KE ((uintptr_t)0x7f0000050000u)
#define GEN1 ((uintptr_t)0x7f1000000040u)
#define GEN2 ((uintptr_t)0x7f1000000080u)

typedef struct {
  lp_engine_t e;
  uint64_t now;     /* the fake clock */
  lp_thread_t *th;  /* thread 1 */
  lp_func_t *f, *g; /* plain functions, lines 1..20 */
  lp_func_t *c, *d; /* coroutines, lines 1..20 */
  lp_func_t *small; /* a function with lines 1..3 only */
} fixture_t;

static int setup(void **state) {
  fixture_t *fx = calloc(1, sizeof(*fx));
  lp_table_t *t;
  if (fx == NULL)
    return -1;
  lp_engine_init(&fx->e, lp_test_clock, &fx->now);
  t = &fx->e.table;
  if (lp_table_add(t, KF, "t.py", "f", 1, 1, 20, LP_KIND_FUNCTION, &fx->f) ||
      lp_table_add(t, KG, "t.py", "g", 1, 1, 20, LP_KIND_FUNCTION, &fx->g) ||
      lp_table_add(t, KC, "t.py", "c", 1, 1, 20, LP_KIND_COROUTINE, &fx->c) ||
      lp_table_add(t, KD, "t.py", "d", 1, 1, 20, LP_KIND_COROUTINE, &fx->d) ||
      lp_table_add(t, KE, "t.py", "small", 1, 1, 3, LP_KIND_FUNCTION,
                   &fx->small) ||
      lp_engine_thread_new(&fx->e, 1, &fx->th))
    return -1;
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture_t *fx = *state;
  lp_test_alloc_reset();
  lp_engine_close(&fx->e);
  free(fx);
  return 0;
}

/* Asserts the four counters of line l of func; reported at the caller. */
#define ASSERT_LINE(func, l, h, tm, aw, mx)                                  \
  do {                                                                       \
    const lp_line_t *ln_ = lp_func_line((func), (l));                        \
    assert_non_null(ln_);                                                    \
    assert_int_equal(ln_->hits, (h));                                        \
    assert_int_equal(ln_->time, (tm));                                       \
    assert_int_equal(ln_->await, (aw));                                      \
    assert_int_equal(ln_->max, (mx));                                        \
  } while (0)

#define ASSERT_ZERO(func, l) ASSERT_LINE(func, l, 0, 0, 0, 0)

/* Event shorthands: each must succeed. */
#define START(th, func, ident, t)                                            \
  assert_int_equal(lp_engine_start(&fx->e, (th), (func), (ident), (t)), 0)
#define LINE(th, l, t)                                                       \
  assert_int_equal(lp_engine_line(&fx->e, lp_engine_top(th), (l), (t)), 0)
#define YIELD(th, key, t)                                                    \
  do {                                                                       \
    uintptr_t u_ = 0xbad;                                                    \
    assert_int_equal(lp_engine_yield(&fx->e, (th), (key), (t), &u_), 0);     \
    assert_int_equal(u_, 0);                                                 \
  } while (0)
#define RESUME(th, key, func, ident, l, t, expect)                           \
  assert_int_equal(                                                          \
      lp_engine_resume(&fx->e, (th), (key), (func), (ident), (l), (t)),      \
      (expect))
#define RETURN(th, t, user)                                                  \
  assert_int_equal(lp_engine_return(&fx->e, (th), (t)), (user))
#define UNWIND(th, t, user)                                                  \
  assert_int_equal(lp_engine_unwind(&fx->e, (th), (t)), (user))

/* Records the user values a callback is called with. */
static uintptr_t seen[16];
static int nseen;
static void record_user(uintptr_t user) {
  assert_true(nseen < 16);
  seen[nseen++] = user;
}
static int seen_has(uintptr_t user) {
  int i;
  for (i = 0; i < nseen; i++)
    if (seen[i] == user)
      return 1;
  return 0;
}

/* ------------------------------------------------------------------ */

static void test_init_and_clock(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th2 = NULL;
  fx->now = 12345;
  assert_int_equal(lp_engine_now(&fx->e), 12345);
  fx->now = 0xFFFFFFFFFFull;
  assert_int_equal(lp_engine_now(&fx->e), 0xFFFFFFFFFFull);
  assert_int_equal(fx->th->depth, 0);
  assert_int_equal(fx->th->id, 1);
  assert_null(lp_engine_top(fx->th));
  assert_int_equal(fx->e.nparked, 0);
  assert_int_equal(lp_engine_thread_new(&fx->e, 77, &th2), 0);
  assert_int_equal(th2->id, 77);
  assert_int_equal(th2->depth, 0);
  assert_ptr_not_equal(th2, fx->th);
  /* Thread records are allocated: LP_ENOMEM, and no thread added. */
  th2 = NULL;
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_thread_new(&fx->e, 78, &th2), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_null(th2);
  assert_int_equal(fx->e.threads->id, 77);
  assert_int_equal(fx->e.threads->next->id, 1);
  assert_null(fx->e.threads->next->next);
}

static void test_plain_function(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_frame_t *fr;
  START(th, fx->f, 0xf1, 90);
  fr = lp_engine_top(th);
  assert_non_null(fr);
  assert_int_equal(th->depth, 1);
  assert_ptr_equal(fr->func, fx->f);
  assert_int_equal(fr->ident, 0xf1);
  assert_int_equal(fr->user, 0);
  assert_int_equal(fr->lineno, 0);
  assert_int_equal(fr->state, LP_FRAME_RUNNING);
  /* 90..100 before the first line event is charged nowhere. */
  LINE(th, 1, 100);
  LINE(th, 2, 130); /* line 1: 100..130 = 30 */
  LINE(th, 1, 150); /* line 2: 130..150 = 20 */
  LINE(th, 3, 200); /* line 1: 150..200 = 50 */
  assert_int_equal(lp_engine_top(th)->lineno, 3);
  RETURN(th, 260, 0); /* line 3: 200..260 = 60 */
  assert_int_equal(th->depth, 0);
  ASSERT_LINE(fx->f, 1, 2, 80, 0, 50);
  ASSERT_LINE(fx->f, 2, 1, 20, 0, 20);
  ASSERT_LINE(fx->f, 3, 1, 60, 0, 60);
  ASSERT_ZERO(fx->f, 4);
  /* Returning from (or unwinding) an empty stack is a no-op. */
  RETURN(th, 300, 0);
  UNWIND(th, 300, 0);
  assert_int_equal(th->depth, 0);
  ASSERT_LINE(fx->f, 3, 1, 60, 0, 60);
}

static void test_callee_time(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  START(th, fx->f, 1, 0);
  LINE(th, 1, 0);
  START(th, fx->g, 2, 10); /* f's line 1 calls g */
  assert_int_equal(th->depth, 2);
  LINE(th, 1, 15);
  LINE(th, 2, 40);  /* g line 1: 15..40 = 25 */
  RETURN(th, 70, 0); /* g line 2: 40..70 = 30 */
  assert_int_equal(th->depth, 1);
  LINE(th, 2, 80);   /* f line 1: 0..80 = 80, g's 10..70 included */
  RETURN(th, 100, 0); /* f line 2: 80..100 = 20 */
  ASSERT_LINE(fx->f, 1, 1, 80, 0, 80);
  ASSERT_LINE(fx->f, 2, 1, 20, 0, 20);
  ASSERT_LINE(fx->g, 1, 1, 25, 0, 25);
  ASSERT_LINE(fx->g, 2, 1, 30, 0, 30);
}

static void test_max_is_longest_stretch(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  START(th, fx->f, 1, 0);
  LINE(th, 1, 0);
  LINE(th, 2, 5);  /* 1: 5 */
  LINE(th, 1, 10); /* 2: 5 */
  LINE(th, 2, 60); /* 1: 50 */
  LINE(th, 1, 70); /* 2: 10 */
  LINE(th, 2, 77); /* 1: 7 */
  RETURN(th, 80, 0); /* 2: 3 */
  ASSERT_LINE(fx->f, 1, 3, 62, 0, 50);
  ASSERT_LINE(fx->f, 2, 3, 18, 0, 10);
}

static void test_line_repeated(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* The same line reported twice in a row (a loop on one line): two hits,
   * two stretches. */
  START(th, fx->f, 1, 0);
  LINE(th, 4, 0);
  LINE(th, 4, 9);  /* 0..9 = 9 */
  RETURN(th, 12, 0); /* 9..12 = 3 */
  ASSERT_LINE(fx->f, 4, 2, 12, 0, 9);
}

static void test_yield_resume(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  uintptr_t u = 0xbad;
  lp_frame_t *fr;
  START(th, fx->c, 1, 0);
  LINE(th, 5, 0);
  LINE(th, 6, 10); /* 5: 10 */
  lp_engine_top(th)->user = 0xAB;
  assert_int_equal(lp_engine_yield(&fx->e, th, GEN1, 30, &u), 0);
  assert_int_equal(u, 0); /* nothing was parked under GEN1 */
  assert_int_equal(th->depth, 0);
  assert_int_equal(fx->e.nparked, 1);
  assert_int_equal(fx->e.parked.count, 1);
  ASSERT_LINE(fx->c, 6, 1, 20, 0, 20); /* 10..30 */
  /* Resuming: 1 (unparked), ident replaced, line and user kept, no hit. */
  RESUME(th, GEN1, fx->c, 2, 19, 100, 1);
  fr = lp_engine_top(th);
  assert_int_equal(th->depth, 1);
  assert_int_equal(fr->ident, 2);
  assert_int_equal(fr->lineno, 6);
  assert_int_equal(fr->user, 0xAB);
  assert_ptr_equal(fr->func, fx->c);
  assert_int_equal(fr->state, LP_FRAME_RUNNING);
  assert_int_equal(fx->e.nparked, 0);
  assert_int_equal(fx->e.parked.count, 0);
  ASSERT_LINE(fx->c, 6, 1, 20, 70, 20); /* await 30..100 */
  ASSERT_ZERO(fx->c, 19);
  LINE(th, 7, 140); /* 6: +40 (100..140), max 40 > 20 */
  RETURN(th, 145, 0xAB);
  ASSERT_LINE(fx->c, 5, 1, 10, 0, 10);
  ASSERT_LINE(fx->c, 6, 1, 60, 70, 40);
  ASSERT_LINE(fx->c, 7, 1, 5, 0, 5);
}

static void test_yield_max_not_summed(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* Line 3 runs 0..20, is suspended 20..25, runs 25..45: time 40, max 20
   * (a suspension interrupts the stretch). */
  START(th, fx->c, 1, 0);
  LINE(th, 3, 0);
  YIELD(th, GEN1, 20);
  RESUME(th, GEN1, fx->c, 1, 3, 25, 1);
  LINE(th, 4, 45);
  RETURN(th, 46, 0);
  ASSERT_LINE(fx->c, 3, 1, 40, 5, 20);
  ASSERT_LINE(fx->c, 4, 1, 1, 0, 1);
}

static void test_yield_errors(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  uintptr_t u;
  /* Empty stack. */
  assert_int_equal(lp_engine_yield(&fx->e, th, GEN1, 5, &u), LP_EINVAL);
  assert_int_equal(fx->e.nparked, 0);
  /* Key 0: nothing happens to the frame. */
  START(th, fx->c, 1, 0);
  LINE(th, 2, 0);
  assert_int_equal(lp_engine_yield(&fx->e, th, 0, 5, &u), LP_EINVAL);
  assert_int_equal(th->depth, 1);
  assert_int_equal(fx->e.nparked, 0);
  assert_int_equal(lp_engine_top(th)->state, LP_FRAME_RUNNING);
  ASSERT_LINE(fx->c, 2, 1, 0, 0, 0);
  RETURN(th, 9, 0); /* the line ran on: 0..9 */
  ASSERT_LINE(fx->c, 2, 1, 9, 0, 9);
}

static void test_yield_before_first_line(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* A generator created and suspended before its first line: nothing to
   * charge until a line event. */
  START(th, fx->c, 1, 0);
  YIELD(th, GEN1, 3);
  assert_int_equal(fx->e.nparked, 1);
  RESUME(th, GEN1, fx->c, 2, 0, 50, 1);
  assert_int_equal(lp_engine_top(th)->lineno, 0);
  LINE(th, 1, 52);
  RETURN(th, 60, 0);
  ASSERT_LINE(fx->c, 1, 1, 8, 0, 8);
}

static void test_recursion(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* fact(3): three frames of f on one thread, each timed on its own.
   *   frame 1: line 1 0..10, line 2 10..40
   *   frame 2: line 1 12..20, line 2 20..35
   *   frame 3: line 1 22..25, line 3 25..30 */
  START(th, fx->f, 1, 0);
  LINE(th, 1, 0);
  LINE(th, 2, 10);
  START(th, fx->f, 2, 12);
  LINE(th, 1, 12);
  LINE(th, 2, 20);
  START(th, fx->f, 3, 22);
  LINE(th, 1, 22);
  LINE(th, 3, 25);
  assert_int_equal(th->depth, 3);
  RETURN(th, 30, 0);
  assert_int_equal(lp_engine_top(th)->ident, 2);
  assert_int_equal(lp_engine_top(th)->lineno, 2);
  RETURN(th, 35, 0);
  RETURN(th, 40, 0);
  assert_int_equal(th->depth, 0);
  /* line 1: 10 + 8 + 3; line 2: 30 + 15; line 3: 5. */
  ASSERT_LINE(fx->f, 1, 3, 21, 0, 10);
  ASSERT_LINE(fx->f, 2, 2, 45, 0, 30);
  ASSERT_LINE(fx->f, 3, 1, 5, 0, 5);
}

static void test_interleaved_instances(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* Two frames X and Y of coroutine c, suspended and resumed alternately
   * under their own keys. */
  START(th, fx->c, 0x10, 0); /* X */
  LINE(th, 1, 0);
  LINE(th, 2, 5);     /* X 1: 5 */
  YIELD(th, GEN1, 10); /* X 2: 5 */
  START(th, fx->c, 0x20, 20); /* Y */
  LINE(th, 1, 20);
  LINE(th, 2, 30);     /* Y 1: 10 */
  YIELD(th, GEN2, 32); /* Y 2: 2 */
  assert_int_equal(fx->e.nparked, 2);
  RESUME(th, GEN1, fx->c, 0x11, 2, 50, 1); /* X 2 await: 10..50 = 40 */
  LINE(th, 3, 55);    /* X 2: +5 */
  RETURN(th, 60, 0);  /* X 3: 5 */
  RESUME(th, GEN2, fx->c, 0x21, 2, 70, 1); /* Y 2 await: 32..70 = 38 */
  assert_int_equal(lp_engine_top(th)->ident, 0x21);
  LINE(th, 3, 71);    /* Y 2: +1 */
  RETURN(th, 80, 0);  /* Y 3: 9 */
  assert_int_equal(fx->e.nparked, 0);
  ASSERT_LINE(fx->c, 1, 2, 15, 0, 10);
  ASSERT_LINE(fx->c, 2, 2, 13, 78, 5);
  ASSERT_LINE(fx->c, 3, 2, 14, 0, 9);
}

static void test_nested_suspension(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* Outer coroutine A (c) at line 10 awaits inner B (d). B suspends, then
   * A does; both resume at 100, A first, then B on top of it. */
  START(th, fx->c, 0xA, 0);
  LINE(th, 10, 0);
  START(th, fx->d, 0xB, 10);
  LINE(th, 5, 10);
  YIELD(th, GEN2, 30); /* B 5: 10..30 = 20 */
  assert_int_equal(lp_engine_top(th)->ident, 0xA);
  YIELD(th, GEN1, 30); /* A 10: 0..30 = 30 */
  assert_int_equal(th->depth, 0);
  assert_int_equal(fx->e.nparked, 2);
  RESUME(th, GEN1, fx->c, 0xA, 10, 100, 1);
  RESUME(th, GEN2, fx->d, 0xB, 5, 100, 1);
  assert_int_equal(th->depth, 2);
  assert_ptr_equal(th->stack[0].func, fx->c);
  assert_ptr_equal(th->stack[1].func, fx->d);
  LINE(th, 6, 110);   /* B 5: +10 */
  RETURN(th, 115, 0); /* B 6: 5 */
  LINE(th, 11, 120);  /* A 10: 100..120 = 20, B's 100..115 inside */
  RETURN(th, 130, 0); /* A 11: 10 */
  /* Both suspended 30..100. A's line 10 active: 30 + 20, which holds all
   * of B's active time (20 + 10 + 5). */
  ASSERT_LINE(fx->c, 10, 1, 50, 70, 30);
  ASSERT_LINE(fx->c, 11, 1, 10, 0, 10);
  ASSERT_LINE(fx->d, 5, 1, 30, 70, 20);
  ASSERT_LINE(fx->d, 6, 1, 5, 0, 5);
}

static void test_throw_and_close(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* throw(): resumed with its key, unwound at once. */
  START(th, fx->c, 1, 0);
  LINE(th, 3, 0);
  lp_engine_top(th)->user = 0xC0;
  YIELD(th, GEN1, 4);                   /* 3: 4 */
  RESUME(th, GEN1, fx->c, 2, 3, 50, 1); /* await 4..50 = 46 */
  UNWIND(th, 57, 0xC0);                 /* 3: +7 */
  assert_int_equal(th->depth, 0);
  assert_int_equal(fx->e.nparked, 0);
  ASSERT_LINE(fx->c, 3, 1, 11, 46, 7);

  /* close(): GeneratorExit caught, then a return. */
  START(th, fx->d, 1, 100);
  LINE(th, 8, 100);
  YIELD(th, GEN2, 130);                  /* 8: 30 */
  RESUME(th, GEN2, fx->d, 3, 8, 131, 1); /* await 1 */
  RETURN(th, 133, 0);                    /* 8: +2 */
  ASSERT_LINE(fx->d, 8, 1, 32, 1, 30);
}

static void test_adopt_mid_frame(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_frame_t *fr;
  /* Enabled while the frame was suspended: adopted at its line, no hit. */
  RESUME(th, GEN1, fx->f, 7, 7, 100, 0);
  fr = lp_engine_top(th);
  assert_int_equal(th->depth, 1);
  assert_ptr_equal(fr->func, fx->f);
  assert_int_equal(fr->ident, 7);
  assert_int_equal(fr->lineno, 7);
  assert_int_equal(fr->user, 0);
  assert_int_equal(fr->state, LP_FRAME_RUNNING);
  ASSERT_ZERO(fx->f, 7);
  LINE(th, 8, 130);   /* 7: 100..130 = 30, still no hit */
  RETURN(th, 140, 0); /* 8: 10 */
  ASSERT_LINE(fx->f, 7, 0, 30, 0, 30);
  ASSERT_LINE(fx->f, 8, 1, 10, 0, 10);

  /* Adopted at a line past the array: the array grows to hold it. */
  RESUME(th, GEN1, fx->small, 8, 25, 200, 0);
  assert_int_equal(fx->small->nlines, 25);
  assert_int_equal(lp_engine_top(th)->lineno, 25);
  RETURN(th, 205, 0);
  ASSERT_LINE(fx->small, 25, 0, 5, 0, 5);

  /* Key 0 is never parked: always adopted. No line: nothing charged until
   * the first line event. */
  RESUME(th, 0, fx->g, 9, 0, 300, 0);
  assert_int_equal(lp_engine_top(th)->lineno, 0);
  LINE(th, 2, 310);
  RETURN(th, 315, 0);
  ASSERT_LINE(fx->g, 2, 1, 5, 0, 5);
  ASSERT_ZERO(fx->g, 1);
}

static void test_start_then_line(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* A line event for a function with an empty stack: the backend pushes a
   * frame with lp_engine_start, then reports the line. */
  assert_null(lp_engine_top(th));
  START(th, fx->g, 0x99, 5);
  LINE(th, 3, 5);
  assert_int_equal(lp_engine_top(th)->lineno, 3);
  RETURN(th, 12, 0);
  ASSERT_LINE(fx->g, 3, 1, 7, 0, 7);
}

static void test_unwind(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  START(th, fx->f, 1, 0);
  LINE(th, 1, 0);
  LINE(th, 2, 10);
  lp_engine_top(th)->user = 0x5;
  UNWIND(th, 25, 0x5); /* 2: 10..25 */
  ASSERT_LINE(fx->f, 1, 1, 10, 0, 10);
  ASSERT_LINE(fx->f, 2, 1, 15, 0, 15);

  /* An exception through two frames. */
  START(th, fx->f, 1, 100);
  LINE(th, 1, 100);
  START(th, fx->g, 2, 110);
  LINE(th, 5, 112);
  UNWIND(th, 120, 0); /* g 5: 8 */
  UNWIND(th, 121, 0); /* f 1: 100..121 = 21 */
  assert_int_equal(th->depth, 0);
  ASSERT_LINE(fx->f, 1, 2, 31, 0, 21);
  ASSERT_LINE(fx->g, 5, 1, 8, 0, 8);
}

static void test_settle(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* f runs line 10 from 0 and calls coroutine c, which suspends at its
   * line 5 at 10. Settled at 50, then everything goes on. */
  START(th, fx->f, 1, 0);
  LINE(th, 10, 0);
  START(th, fx->c, 2, 2);
  LINE(th, 5, 5);
  YIELD(th, GEN1, 10); /* c 5: 5 */
  lp_engine_settle(&fx->e, 50);
  ASSERT_LINE(fx->f, 10, 1, 50, 0, 50); /* open 0..50 */
  ASSERT_LINE(fx->c, 5, 1, 5, 40, 5);   /* suspended 10..50 */
  /* Settling twice at the same time adds nothing. */
  lp_engine_settle(&fx->e, 50);
  ASSERT_LINE(fx->f, 10, 1, 50, 0, 50);
  ASSERT_LINE(fx->c, 5, 1, 5, 40, 5);

  LINE(th, 11, 80); /* f 10: +30, one stretch 0..80 for max */
  ASSERT_LINE(fx->f, 10, 1, 80, 0, 80);
  RESUME(th, GEN1, fx->c, 3, 5, 90, 1); /* c 5 await: +40 (50..90) */
  ASSERT_LINE(fx->c, 5, 1, 5, 80, 5);
  LINE(th, 6, 95);     /* c 5: +5 */
  RETURN(th, 100, 0);  /* c 6: 5 */
  LINE(th, 12, 110);   /* f 11: 80..110 = 30 */
  lp_engine_settle(&fx->e, 115); /* f 12: 5 so far */
  ASSERT_LINE(fx->f, 12, 1, 5, 0, 5);
  RETURN(th, 120, 0);  /* f 12: +5 */

  /* The totals are those without the settles. */
  ASSERT_LINE(fx->f, 10, 1, 80, 0, 80);
  ASSERT_LINE(fx->f, 11, 1, 30, 0, 30);
  ASSERT_LINE(fx->f, 12, 1, 10, 0, 10);
  ASSERT_LINE(fx->c, 5, 1, 10, 80, 5);
  ASSERT_LINE(fx->c, 6, 1, 5, 0, 5);

  /* A frame with no line yet: the settle charges nothing. */
  START(th, fx->g, 4, 130);
  lp_engine_settle(&fx->e, 135);
  LINE(th, 1, 140);
  RETURN(th, 150, 0);
  ASSERT_LINE(fx->g, 1, 1, 10, 0, 10);
  /* Settling an idle engine is a no-op. */
  lp_engine_settle(&fx->e, 200);
  ASSERT_LINE(fx->g, 1, 1, 10, 0, 10);
}

static void test_settle_two_threads(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  START(th, fx->f, 1, 0);
  LINE(th, 1, 0);
  START(th2, fx->g, 2, 4);
  LINE(th2, 1, 4);
  lp_engine_settle(&fx->e, 10);
  ASSERT_LINE(fx->f, 1, 1, 10, 0, 10);
  ASSERT_LINE(fx->g, 1, 1, 6, 0, 6);
  RETURN(th, 12, 0);
  RETURN(th2, 20, 0);
  ASSERT_LINE(fx->f, 1, 1, 12, 0, 12);
  ASSERT_LINE(fx->g, 1, 1, 16, 0, 16);
}

static void test_detach_and_each_user(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  /* c parked with a user value; f (user), g (none), d (user) running. */
  START(th, fx->c, 1, 0);
  LINE(th, 4, 0);
  lp_engine_top(th)->user = 0x40;
  YIELD(th, GEN1, 2); /* c 4: 2 */
  START(th, fx->f, 2, 3);
  LINE(th, 1, 3);
  lp_engine_top(th)->user = 0x10;
  START(th, fx->g, 3, 5);
  LINE(th, 2, 5);
  START(th, fx->d, 4, 8);
  LINE(th, 3, 8);
  lp_engine_top(th)->user = 0x30;

  nseen = 0;
  lp_engine_detach(&fx->e, 20, record_user);
  /* Popped innermost first, as returns at 20; only nonzero users. */
  assert_int_equal(nseen, 2);
  assert_int_equal(seen[0], 0x30);
  assert_int_equal(seen[1], 0x10);
  assert_int_equal(th->depth, 0);
  ASSERT_LINE(fx->d, 3, 1, 12, 0, 12);
  ASSERT_LINE(fx->g, 2, 1, 15, 0, 15);
  ASSERT_LINE(fx->f, 1, 1, 17, 0, 17);
  /* The parked frame stays parked, its suspension still open. */
  assert_int_equal(fx->e.nparked, 1);
  ASSERT_LINE(fx->c, 4, 1, 2, 0, 2);

  nseen = 0;
  lp_engine_each_user(&fx->e, record_user);
  assert_int_equal(nseen, 1);
  assert_int_equal(seen[0], 0x40);
  nseen = 0;
  lp_engine_each_user(&fx->e, record_user); /* cleared: no more calls */
  assert_int_equal(nseen, 0);
  assert_int_equal(fx->e.nparked, 1);

  RESUME(th, GEN1, fx->c, 5, 4, 30, 1); /* await 2..30 */
  assert_int_equal(lp_engine_top(th)->user, 0);
  RETURN(th, 31, 0);
  ASSERT_LINE(fx->c, 4, 1, 3, 28, 2);

  /* Detach with no callback; and on an empty engine. */
  START(th, fx->f, 6, 40);
  LINE(th, 5, 40);
  lp_engine_top(th)->user = 0x77;
  lp_engine_detach(&fx->e, 45, NULL);
  assert_int_equal(th->depth, 0);
  ASSERT_LINE(fx->f, 5, 1, 5, 0, 5);
  nseen = 0;
  lp_engine_detach(&fx->e, 50, record_user);
  assert_int_equal(nseen, 0);
}

static void test_detach_two_threads(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  START(th, fx->f, 1, 0);
  LINE(th, 1, 0);
  lp_engine_top(th)->user = 0x11;
  START(th2, fx->g, 2, 5);
  LINE(th2, 1, 5);
  lp_engine_top(th2)->user = 0x22;
  START(th2, fx->g, 3, 6);
  LINE(th2, 2, 6);
  lp_engine_top(th2)->user = 0x33;
  /* each_user visits running frames too, and clears them. */
  nseen = 0;
  lp_engine_each_user(&fx->e, record_user);
  assert_int_equal(nseen, 3);
  assert_true(seen_has(0x11) && seen_has(0x22) && seen_has(0x33));
  assert_int_equal(th2->stack[0].user, 0);
  assert_int_equal(th2->stack[1].user, 0);
  lp_engine_top(th)->user = 0x44;
  nseen = 0;
  lp_engine_detach(&fx->e, 10, record_user);
  assert_int_equal(nseen, 1);
  assert_int_equal(seen[0], 0x44);
  assert_int_equal(th->depth, 0);
  assert_int_equal(th2->depth, 0);
  ASSERT_LINE(fx->f, 1, 1, 10, 0, 10);
  ASSERT_LINE(fx->g, 1, 1, 5, 0, 5);
  ASSERT_LINE(fx->g, 2, 1, 4, 0, 4);
}

static void test_drop(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  uintptr_t u = 0xbad;
  START(th, fx->c, 1, 0);
  LINE(th, 5, 0);
  lp_engine_top(th)->user = 0x77;
  YIELD(th, GEN1, 10); /* 5: 10 */
  assert_int_equal(lp_engine_drop(&fx->e, GEN1, 60, &u), 1);
  assert_int_equal(u, 0x77);
  assert_int_equal(fx->e.nparked, 0);
  assert_int_equal(fx->e.parked.count, 0);
  ASSERT_LINE(fx->c, 5, 1, 10, 50, 10); /* await 10..60 */
  /* Gone: a second drop finds nothing; unknown keys and key 0 neither. */
  assert_int_equal(lp_engine_drop(&fx->e, GEN1, 70, &u), 0);
  assert_int_equal(lp_engine_drop(&fx->e, GEN2, 70, &u), 0);
  assert_int_equal(lp_engine_drop(&fx->e, 0, 70, &u), 0);
  ASSERT_LINE(fx->c, 5, 1, 10, 50, 10);
  /* A resume under the dropped key now adopts. */
  RESUME(th, GEN1, fx->c, 2, 5, 80, 0);
  RETURN(th, 81, 0);
  ASSERT_LINE(fx->c, 5, 1, 11, 50, 10);
}

static void test_yield_stale_key(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  uintptr_t u = 0xbad;
  /* X (c) parked under GEN1 and never seen again; Y (d) later parks
   * under the same key (the address was reused). */
  START(th, fx->c, 1, 0);
  LINE(th, 5, 0);
  lp_engine_top(th)->user = 0x77;
  YIELD(th, GEN1, 10); /* X 5: 10 */
  START(th, fx->d, 2, 20);
  LINE(th, 3, 20);
  lp_engine_top(th)->user = 0x88;
  assert_int_equal(lp_engine_yield(&fx->e, th, GEN1, 25, &u), 0); /* Y 3: 5 */
  assert_int_equal(u, 0x77);                 /* X's user handed back */
  assert_int_equal(fx->e.nparked, 1);
  ASSERT_LINE(fx->c, 5, 1, 10, 15, 10);      /* X suspended 10..25 */
  RESUME(th, GEN1, fx->d, 3, 3, 40, 1);      /* Y: await 25..40 */
  assert_ptr_equal(lp_engine_top(th)->func, fx->d);
  assert_int_equal(lp_engine_top(th)->user, 0x88);
  RETURN(th, 41, 0x88);                      /* Y 3: +1 */
  ASSERT_LINE(fx->d, 3, 1, 6, 15, 5);
  ASSERT_LINE(fx->c, 5, 1, 10, 15, 10);
  assert_int_equal(fx->e.nparked, 0);
}

static void test_two_threads(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th1 = fx->th, *th2;
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* Two threads run f; events interleave.
   *   th1: line 1 0..10, line 2 10..20
   *   th2: line 1 5..12, line 2 12..30 */
  START(th1, fx->f, 1, 0);
  LINE(th1, 1, 0);
  START(th2, fx->f, 2, 5);
  LINE(th2, 1, 5);
  LINE(th1, 2, 10);
  LINE(th2, 2, 12);
  RETURN(th1, 20, 0);
  assert_int_equal(th2->depth, 1);
  RETURN(th2, 30, 0);
  ASSERT_LINE(fx->f, 1, 2, 17, 0, 10);
  ASSERT_LINE(fx->f, 2, 2, 28, 0, 18);

  /* A coroutine suspended on one thread and resumed on the other. */
  START(th1, fx->c, 3, 30);
  LINE(th1, 1, 30);
  YIELD(th1, GEN1, 35);                  /* 1: 5 */
  RESUME(th2, GEN1, fx->c, 4, 1, 50, 1); /* await 35..50 */
  assert_int_equal(th1->depth, 0);
  assert_int_equal(th2->depth, 1);
  LINE(th2, 2, 52);  /* 1: +2 */
  RETURN(th2, 60, 0); /* 2: 8 */
  ASSERT_LINE(fx->c, 1, 1, 7, 15, 5);
  ASSERT_LINE(fx->c, 2, 1, 8, 0, 8);
}

/* ---- allocation failure ---- */

static void test_oom_start(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  int i;
  /* The first push allocates the stack. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_start(&fx->e, th, fx->f, 1, 0), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(th->depth, 0);
  assert_int_equal(th->cap, 0);
  /* 32 frames fit in the first stack; the 33rd needs growth. */
  for (i = 0; i < 32; i++)
    START(th, fx->f, (uintptr_t)i + 1, (uint64_t)i);
  assert_int_equal(th->cap, 32);
  LINE(th, 1, 40);
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_start(&fx->e, th, fx->g, 99, 41), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(th->depth, 32);
  assert_int_equal(th->cap, 32);
  assert_int_equal(lp_engine_top(th)->ident, 32);
  assert_ptr_equal(lp_engine_top(th)->func, fx->f);
  /* The top frame goes on undisturbed. */
  START(th, fx->g, 99, 45);
  assert_int_equal(th->cap, 64);
  RETURN(th, 46, 0);
  RETURN(th, 50, 0); /* f 1: 40..50 */
  ASSERT_LINE(fx->f, 1, 1, 10, 0, 10);
  lp_engine_detach(&fx->e, 60, NULL);
  assert_int_equal(th->depth, 0);
}

static void test_oom_yield_pool(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  uintptr_t u = 0xbad;
  START(th, fx->c, 1, 0);
  LINE(th, 5, 0);
  lp_engine_top(th)->user = 0x99;
  /* The first park allocates the pool: that fails. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_yield(&fx->e, th, GEN1, 10, &u), LP_ENOMEM);
  assert_int_equal(lp_test_alloc.allocs, 1);
  lp_test_alloc_reset();
  assert_int_equal(u, 0x99); /* handed back */
  assert_int_equal(th->depth, 0);
  assert_int_equal(fx->e.nparked, 0);
  assert_int_equal(fx->e.parked.count, 0);
  ASSERT_LINE(fx->c, 5, 1, 10, 0, 10); /* active time up to the yield */
  /* Forgotten: not parked, so a drop finds nothing, and a resume adopts. */
  assert_int_equal(lp_engine_drop(&fx->e, GEN1, 20, &u), 0);
  RESUME(th, GEN1, fx->c, 2, 5, 30, 0);
  RETURN(th, 32, 0);
  ASSERT_LINE(fx->c, 5, 1, 12, 0, 10);
}

static void test_oom_yield_map(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  uintptr_t u = 0xbad;
  long mode;
  /* Mode 0: the pool grows (allocation 0), then both of the map's arrays
   * fail. Mode 1: the free pool slot is reused, the map's first array is
   * granted (allocation 0) and its second fails (allocation 1). */
  for (mode = 0; mode < 2; mode++) {
    START(th, fx->c, 1, 100 * (uint64_t)mode);
    LINE(th, 5, 100 * (uint64_t)mode);
    lp_engine_top(th)->user = 0x99 + (uintptr_t)mode;
    if (mode == 0)
      lp_test_alloc_fail_from(1);
    else
      lp_test_alloc_fail_at(1);
    assert_int_equal(
        lp_engine_yield(&fx->e, th, GEN1, 100 * (uint64_t)mode + 10, &u),
        LP_ENOMEM);
    lp_test_alloc_reset();
    assert_int_equal(u, 0x99 + (uintptr_t)mode);
    assert_int_equal(th->depth, 0);
    assert_int_equal(fx->e.nparked, 0);
    assert_int_equal(fx->e.parked.count, 0);
    assert_int_equal(fx->e.pool_len, 1); /* the slot went back to the pool */
  }
  ASSERT_LINE(fx->c, 5, 2, 20, 0, 10);
  /* With memory back, parking works and reuses the free slot. */
  START(th, fx->c, 1, 200);
  LINE(th, 5, 200);
  YIELD(th, GEN1, 201);
  assert_int_equal(fx->e.nparked, 1);
  assert_int_equal(fx->e.pool_len, 1);
  RESUME(th, GEN1, fx->c, 2, 5, 211, 1);
  RETURN(th, 212, 0);
  ASSERT_LINE(fx->c, 5, 3, 22, 10, 10);
}

static void test_oom_line(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_line_t *lines = fx->small->lines;
  START(th, fx->small, 1, 0);
  LINE(th, 1, 0);
  /* Line 10 is past the array [1, 3]: growing it fails. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_line(&fx->e, lp_engine_top(th), 10, 5), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(lp_engine_top(th)->lineno, 1);
  assert_ptr_equal(fx->small->lines, lines);
  assert_int_equal(fx->small->nlines, 3);
  ASSERT_LINE(fx->small, 1, 1, 0, 0, 0); /* no hit, nothing closed */
  /* Line 0 cannot exist: LP_EINVAL, not counted either. */
  assert_int_equal(lp_engine_line(&fx->e, lp_engine_top(th), 0, 6), LP_EINVAL);
  assert_int_equal(lp_engine_top(th)->lineno, 1);
  LINE(th, 2, 8);  /* 1: 0..8: the failed events did not end the stretch */
  LINE(th, 10, 9); /* 2: 1; grows to [1, 10] */
  assert_int_equal(fx->small->nlines, 10);
  RETURN(th, 12, 0); /* 10: 3 */
  ASSERT_LINE(fx->small, 1, 1, 8, 0, 8);
  ASSERT_LINE(fx->small, 2, 1, 1, 0, 1);
  ASSERT_LINE(fx->small, 10, 1, 3, 0, 3);
}

/* Frames keep a pointer to their line's counters: when a line array grows,
 * every live frame of the function (running below, on another thread,
 * parked) goes on counting into the new array, whose first frame is then
 * the grown-into one. */
static void test_grow_repoints_live_frames(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  lp_line_t *old = fx->small->lines;
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  START(th, fx->small, 1, 0);
  LINE(th, 3, 0);    /* parked at 3 from 2 */
  YIELD(th, GEN1, 2);
  START(th2, fx->small, 2, 0);
  LINE(th2, 1, 0);   /* runs 1 until 20, on thread 2 */
  START(th, fx->small, 3, 4);
  LINE(th, 2, 4);    /* runs 2 until 10, under the frame below */
  START(th, fx->small, 4, 5);
  LINE(th, 1, 5);
  LINE(th, 40, 6);   /* grows [1, 3] to [1, 40] */
  assert_ptr_not_equal(fx->small->lines, old);
  RETURN(th, 8, 0);  /* 40: 2 */
  RETURN(th, 10, 0); /* 2: 4..10 */
  RESUME(th, GEN1, fx->small, 5, 0, 12, 1); /* 3: await 2..12 */
  RETURN(th, 13, 0); /* 3: 1 + 2 before */
  RETURN(th2, 20, 0); /* 1: 0..20 on thread 2, 5..6 on thread 1 */
  ASSERT_LINE(fx->small, 1, 2, 21, 0, 20);
  ASSERT_LINE(fx->small, 2, 1, 6, 0, 6);
  ASSERT_LINE(fx->small, 3, 1, 3, 10, 2);
  ASSERT_LINE(fx->small, 40, 1, 2, 0, 2);
}

static void test_oom_resume_adopt(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th2;
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* A fresh thread has no stack yet: the push fails, nothing adopted. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_resume(&fx->e, th2, GEN1, fx->f, 1, 3, 10),
                   LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(th2->depth, 0);
  assert_int_equal(fx->e.nparked, 0);
  ASSERT_ZERO(fx->f, 3);
}

static void test_oom_resume_parked(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  uintptr_t u = 0;
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* c suspends at line 5 at 10 under GEN1, d at line 7 at 10 under GEN2. */
  START(th, fx->c, 1, 0);
  LINE(th, 5, 0);
  lp_engine_top(th)->user = 0x55;
  YIELD(th, GEN1, 10);
  START(th, fx->d, 2, 0);
  LINE(th, 7, 0);
  YIELD(th, GEN2, 10);
  /* A resume on th2 (no stack yet) fails: the frames stay parked, their
   * suspension goes on. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_resume(&fx->e, th2, GEN1, fx->c, 3, 5, 40),
                   LP_ENOMEM);
  assert_int_equal(lp_engine_resume(&fx->e, th2, GEN2, fx->d, 4, 7, 40),
                   LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(th2->depth, 0);
  assert_int_equal(fx->e.nparked, 2);
  /* Resumed for real at 100 / dropped at 100: suspended 10..100 = 90,
   * counted once. */
  RESUME(th2, GEN1, fx->c, 3, 5, 100, 1);
  assert_int_equal(lp_engine_top(th2)->user, 0x55);
  RETURN(th2, 101, 0x55);
  ASSERT_LINE(fx->c, 5, 1, 11, 90, 10);
  assert_int_equal(lp_engine_drop(&fx->e, GEN2, 100, &u), 1);
  ASSERT_LINE(fx->d, 7, 1, 10, 90, 10);
}

/* ---- scale ---- */

static void test_deep_recursion(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  uint64_t i;
  /* Frame i (0..999) starts and runs line 1 at 2i; frame i returns at
   * 2000 + (999 - i). Its line 1 time is 2999 - 3i; the sum over i is
   * 2999 * 1000 - 3 * 499500 = 1500500, the longest 2999 (frame 0). */
  for (i = 0; i < 1000; i++) {
    START(th, fx->f, (uintptr_t)i + 1, 2 * i);
    LINE(th, 1, 2 * i);
  }
  assert_int_equal(th->depth, 1000);
  assert_int_equal(th->cap, 1024); /* 32 doubled five times */
  assert_int_equal(th->stack[0].ident, 1);
  assert_int_equal(th->stack[999].ident, 1000);
  for (i = 1000; i-- > 0;) {
    assert_int_equal(lp_engine_top(th)->ident, i + 1);
    RETURN(th, 2000 + (999 - i), 0);
  }
  assert_int_equal(th->depth, 0);
  ASSERT_LINE(fx->f, 1, 1000, 1500500, 0, 2999);
}

static void test_many_parked(void **state) {
  enum { N = 10000 };
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  uint64_t i;
  uintptr_t u;
  /* Round 1: frame i runs line 1 at 3i, parks at 3i + 1 (1 active);
   * resumed at 40000 + 2i, returns 1 later (1 active). Await 39999 - i,
   * summed: 39999 * 10000 - 49995000 = 349995000. */
  for (i = 0; i < N; i++) {
    START(th, fx->c, 1, 3 * i);
    LINE(th, 1, 3 * i);
    YIELD(th, GEN1 + 64 * i, 3 * i + 1);
  }
  assert_int_equal(fx->e.nparked, N);
  assert_int_equal(fx->e.parked.count, N);
  assert_int_equal(fx->e.pool_len, N);
  assert_int_equal(fx->e.pool_cap, 16384);         /* 64 doubled 8 times */
  assert_int_equal(fx->e.parked.mask + 1, 32768);  /* at most half full */
  assert_int_equal(th->depth, 0);
  for (i = 0; i < N; i++) {
    RESUME(th, GEN1 + 64 * i, fx->c, 2, 1, 40000 + 2 * i, 1);
    RETURN(th, 40000 + 2 * i + 1, 0);
  }
  assert_int_equal(fx->e.nparked, 0);
  assert_int_equal(fx->e.parked.count, 0);
  ASSERT_LINE(fx->c, 1, N, 20000, 349995000, 1);

  /* Round 2 reuses the free slots: line 2 at 100000 + 3i, park 1 later,
   * all dropped at 200000. Await 99999 - 3i, summed:
   * 99999 * 10000 - 3 * 49995000 = 999990000 - 149985000 = 850005000. */
  for (i = 0; i < N; i++) {
    START(th, fx->c, 1, 100000 + 3 * i);
    LINE(th, 2, 100000 + 3 * i);
    YIELD(th, GEN2 + 48 * i, 100000 + 3 * i + 1);
  }
  assert_int_equal(fx->e.pool_len, N);
  assert_int_equal(fx->e.pool_cap, 16384);
  assert_int_equal(fx->e.nparked, N);
  for (i = 0; i < N; i++) {
    u = 0xbad;
    assert_int_equal(lp_engine_drop(&fx->e, GEN2 + 48 * i, 200000, &u), 1);
    assert_int_equal(u, 0);
  }
  assert_int_equal(fx->e.nparked, 0);
  ASSERT_LINE(fx->c, 2, N, 10000, 850005000, 1);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_init_and_clock),
      T(test_plain_function),
      T(test_callee_time),
      T(test_max_is_longest_stretch),
      T(test_line_repeated),
      T(test_yield_resume),
      T(test_yield_max_not_summed),
      T(test_yield_errors),
      T(test_yield_before_first_line),
      T(test_recursion),
      T(test_interleaved_instances),
      T(test_nested_suspension),
      T(test_throw_and_close),
      T(test_adopt_mid_frame),
      T(test_start_then_line),
      T(test_unwind),
      T(test_settle),
      T(test_settle_two_threads),
      T(test_detach_and_each_user),
      T(test_detach_two_threads),
      T(test_drop),
      T(test_yield_stale_key),
      T(test_two_threads),
      T(test_oom_start),
      T(test_oom_yield_pool),
      T(test_oom_yield_map),
      T(test_oom_line),
      T(test_grow_repoints_live_frames),
      T(test_oom_resume_adopt),
      T(test_oom_resume_parked),
      T(test_deep_recursion),
      T(test_many_parked),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
