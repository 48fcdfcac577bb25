/* test_engine_tasks.c - lp_engine: attribution of time to event-loop tasks.
 * Accounting is at the task level: a task is active (time) while any of its
 * profiled frames runs, and awaiting (await) while none runs and at least
 * one is suspended; frames of one task never count an interval twice, so
 * time + await never exceed the span between the task's first and last
 * event. A frame of one task running directly on top of a frame of another
 * (an eager task's first step inside its creator's create_task()) makes
 * that other task wait until it leaves the stack. Every frame holds a
 * reference to its task until it ends.
 * Driven by synthetic event sequences with hand-picked timestamps (every
 * expected number is worked out by hand in the comments), and by seeded
 * random sequences on two threads and several tasks, checked against an
 * independent model that derives each task's state from the frames alone. */
#include "lp_test.h"

#include "lp_engine.h"

#define KF ((uintptr_t)0x7f0000010000u)
#define KG ((uintptr_t)0x7f0000020000u)
#define KC ((uintptr_t)0x7f0000030000u)
#define KD ((uintptr_t)0x7f0000040000u)
#define GEN1 ((uintptr_t)0x7f1000000040u)
#define GEN2 ((uintptr_t)0x7f1000000080u)
#define GEN3 ((uintptr_t)0x7f10000000c0u)

typedef struct {
  lp_engine_t e;
  uint64_t now;     /* the fake clock */
  lp_thread_t *th;  /* thread 1 */
  lp_func_t *f, *g; /* plain functions, lines 1..20 */
  lp_func_t *c, *d; /* coroutines, lines 1..20 */
} fixture_t;

/* Initializes fx->e with its four functions and thread 1. Returns 0 or -1. */
static int fixture_open(fixture_t *fx) {
  lp_table_t *t;
  lp_engine_init(&fx->e, lp_test_clock, &fx->now);
  t = &fx->e.table;
  if (lp_table_add(t, KF, "t.py", "f", 1, 1, 20, LP_KIND_FUNCTION, &fx->f) ||
      lp_table_add(t, KG, "t.py", "g", 1, 1, 20, LP_KIND_FUNCTION, &fx->g) ||
      lp_table_add(t, KC, "t.py", "c", 1, 1, 20, LP_KIND_COROUTINE, &fx->c) ||
      lp_table_add(t, KD, "t.py", "d", 1, 1, 20, LP_KIND_COROUTINE, &fx->d) ||
      lp_engine_thread_new(&fx->e, 1, &fx->th))
    return -1;
  return 0;
}

/* Replaces fx->e by a fresh engine: no task, no frame, empty counters. */
static void fixture_reset(fixture_t *fx) {
  lp_engine_close(&fx->e);
  assert_int_equal(fixture_open(fx), 0);
}

static int setup(void **state) {
  fixture_t *fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return -1;
  if (fixture_open(fx) != 0) {
    lp_engine_close(&fx->e);
    free(fx);
    return -1;
  }
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

/* Event shorthands: each must succeed. */
#define START(th, func, ident, t)                                            \
  assert_int_equal(lp_engine_start(&fx->e, (th), (func), (ident), (t)), 0)
#define SET(th, task, t) lp_engine_set_task(&fx->e, (th), (task), (t))
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
#define RETURN(th, t) lp_engine_return(&fx->e, (th), (t))
#define UNWIND(th, t) lp_engine_unwind(&fx->e, (th), (t))
#define DROP(key, t)                                                         \
  do {                                                                       \
    uintptr_t u_ = 0xbad;                                                    \
    assert_int_equal(lp_engine_drop(&fx->e, (key), (t), &u_), 1);           \
  } while (0)

/* A task seen for the first time at t (one reference: its object). */
static lp_task_t *new_task(fixture_t *fx, const char *name, uint64_t t) {
  lp_task_t *task = NULL;
  assert_int_equal(lp_tasks_new(&fx->e.tasks, name, "main", t, &task), 0);
  return task;
}

/* Asserts a task's totals and references; reported at the caller. */
#define ASSERT_TASK(task, tm, aw, fst, lst, nrefs)                           \
  do {                                                                       \
    const lp_task_t *t_ = (task);                                            \
    assert_non_null(t_);                                                     \
    assert_int_equal(t_->time, (tm));                                        \
    assert_int_equal(t_->await, (aw));                                       \
    assert_int_equal(t_->first, (fst));                                      \
    assert_int_equal(t_->last, (lst));                                       \
    assert_int_equal(t_->refs, (nrefs));                                     \
  } while (0)

/* Asserts how many of a task's frames run and how many wait. */
#define ASSERT_COUNTS(task, nrun, npark)                                     \
  do {                                                                       \
    assert_int_equal((task)->running, (nrun));                               \
    assert_int_equal((task)->parked, (npark));                               \
  } while (0)

/* Time + await never exceed the span the task was seen over. */
#define ASSERT_WITHIN_SPAN(task)                                             \
  assert_true((task)->time + (task)->await <= (task)->last - (task)->first)

/* For a task that always had a frame running or suspended between its
 * first and last event: time + await is exactly that span. */
#define ASSERT_SPAN(task)                                                    \
  assert_int_equal((task)->time + (task)->await,                             \
                   (task)->last - (task)->first)

#define ASSERT_LINE(func, l, h, tm, aw)                                      \
  do {                                                                       \
    const lp_line_t *ln_ = lp_func_line((func), (l));                        \
    assert_non_null(ln_);                                                    \
    assert_int_equal(ln_->hits, (h));                                        \
    assert_int_equal(ln_->time, (tm));                                       \
    assert_int_equal(ln_->await, (aw));                                      \
  } while (0)

#define ASSERT_MAX(func, l, mx)                                              \
  assert_int_equal(lp_func_line((func), (l))->max, (mx))

/* Finds the record of task id among the registry's records, and says
 * whether it is live (first part of lp_tasks_each) or retired. */
typedef struct {
  uint64_t id;
  const lp_task_t *found;
  int live; /* 1: among the live records; 0: kept whole */
  int in_live_part;
  int nfolds;
} find_t;

static void find_cb(const lp_task_t *t, void *arg) {
  find_t *f = arg;
  if (t->refs > 0)
    f->in_live_part = 1;
  if (t->id == 0)
    f->nfolds++;
  if (t->id == f->id) {
    assert_null(f->found);
    f->found = t;
    f->live = t->refs > 0;
  }
}

static find_t find_task(fixture_t *fx, uint64_t id) {
  find_t f = {id, NULL, 0, 0, 0};
  lp_tasks_each(&fx->e.tasks, find_cb, &f);
  return f;
}

/* ------------------------------------------------------------------ */

static void test_set_task(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
  lp_frame_t *fr;
  assert_int_equal(T->refs, 1);
  ASSERT_COUNTS(T, 0, 0);
  assert_int_equal(T->mark, 0);
  /* On an empty stack: nothing to attribute. */
  SET(th, T, 0);
  ASSERT_TASK(T, 0, 0, 0, 0, 1);
  ASSERT_COUNTS(T, 0, 0);
  START(th, fx->f, 1, 0);
  fr = lp_engine_top(th);
  assert_null(fr->task); /* no task until set */
  SET(th, T, 0);
  assert_ptr_equal(fr->task, T);
  assert_null(fr->paused); /* nothing below */
  assert_int_equal(T->refs, 2); /* the object + this frame */
  ASSERT_COUNTS(T, 1, 0);
  /* A second attribution of the same frame: one frame, one reference, no
   * accounting. */
  SET(th, T, 3);
  assert_int_equal(T->refs, 2);
  ASSERT_COUNTS(T, 1, 0);
  assert_int_equal(T->mark, 0);
  assert_int_equal(T->time, 0);
  LINE(th, 1, 0);
  RETURN(th, 50); /* 0..50 */
  ASSERT_TASK(T, 50, 0, 0, 50, 1);
  ASSERT_COUNTS(T, 0, 0);
  assert_int_equal(T->mark, 50);
  /* Set some time after the start: counted from the set; the idle 50..67
   * counts nothing, but the set itself is an event: last 67. */
  START(th, fx->g, 2, 60);
  LINE(th, 1, 60);
  SET(th, T, 67);
  ASSERT_TASK(T, 50, 0, 0, 67, 2);
  assert_int_equal(T->mark, 67);
  RETURN(th, 80); /* 67..80 = 13 */
  ASSERT_TASK(T, 63, 0, 0, 80, 1);
  ASSERT_LINE(fx->g, 1, 1, 20, 0); /* the line: 60..80 regardless */
  /* NULL: the frame has no task, T is not touched. */
  START(th, fx->g, 3, 90);
  SET(th, NULL, 90);
  assert_null(lp_engine_top(th)->task);
  RETURN(th, 99);
  ASSERT_TASK(T, 63, 0, 0, 80, 1);
  assert_int_equal(T->mark, 80);
  ASSERT_WITHIN_SPAN(T);
}

static void test_nested_same_task(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
  /* Outer f set at 0; inner g of the same task from 10 to 30; f returns
   * at 50: the task ran 0..50 = 50, not 50 + 20. */
  START(th, fx->f, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th, fx->g, 2, 10);
  SET(th, T, 10);
  assert_null(lp_engine_top(th)->paused); /* same task below */
  assert_int_equal(T->refs, 3);
  ASSERT_COUNTS(T, 2, 0);
  assert_int_equal(T->time, 10); /* accounted at every change */
  LINE(th, 1, 10);
  RETURN(th, 30);
  assert_int_equal(T->refs, 2);
  ASSERT_COUNTS(T, 1, 0);
  assert_int_equal(T->time, 30);
  RETURN(th, 50);
  ASSERT_TASK(T, 50, 0, 0, 50, 1);
  ASSERT_SPAN(T);
  ASSERT_LINE(fx->f, 1, 1, 50, 0);
  ASSERT_LINE(fx->g, 1, 1, 20, 0);
  /* Three deep, by exceptions: f 100..130, g 110..125, f 112..120: +30
   * once. The idle 50..100 counts nothing. */
  START(th, fx->f, 3, 100);
  SET(th, T, 100);
  START(th, fx->g, 4, 110);
  SET(th, T, 110);
  START(th, fx->f, 5, 112);
  SET(th, T, 112);
  assert_int_equal(T->refs, 4);
  ASSERT_COUNTS(T, 3, 0);
  UNWIND(th, 120);
  UNWIND(th, 125);
  UNWIND(th, 130);
  ASSERT_TASK(T, 80, 0, 0, 130, 1);
  ASSERT_COUNTS(T, 0, 0);
  assert_int_equal(T->time + T->await + 50, T->last - T->first);
}

static void test_coroutine_chain(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0), *U;
  /* A (c, task T) awaits B (d, task T). B parks at 20, A parks at 20; A
   * resumes at 100, then B; B returns at 110, A at 120.
   *   T time: 0..20 + 100..120 = 40; await: 20..100 = 80, once
   *   c line 1: time 20 + 20 = 40, await 80
   *   d line 2: time 15 + 10 = 25, await 80 */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th, fx->d, 2, 5);
  SET(th, T, 5);
  LINE(th, 2, 5);
  YIELD(th, GEN2, 20);
  ASSERT_COUNTS(T, 1, 1);
  YIELD(th, GEN1, 20);
  ASSERT_COUNTS(T, 0, 2);
  assert_int_equal(th->depth, 0);
  ASSERT_TASK(T, 20, 0, 0, 20, 3); /* both parked frames hold it */
  RESUME(th, GEN1, fx->c, 3, 1, 100, 1);
  ASSERT_TASK(T, 20, 80, 0, 100, 3);
  ASSERT_COUNTS(T, 1, 1);
  RESUME(th, GEN2, fx->d, 4, 2, 100, 1);
  ASSERT_COUNTS(T, 2, 0);
  ASSERT_TASK(T, 20, 80, 0, 100, 3);
  RETURN(th, 110);
  ASSERT_TASK(T, 30, 80, 0, 110, 2);
  RETURN(th, 120);
  ASSERT_TASK(T, 40, 80, 0, 120, 1);
  ASSERT_LINE(fx->c, 1, 1, 40, 80);
  ASSERT_LINE(fx->d, 2, 1, 25, 80);
  ASSERT_SPAN(T);

  /* The same chain, with the events a little apart (task U, first seen at
   * 200): B (line 4) parks at 220, A (line 3) at 222; A resumes at 300, B
   * at 303; B returns at 310, A at 320.
   *   U time: 200..222 + 300..320 = 42; await: 222..300 = 78
   *   c line 3: await 78; d line 4: await 220..303 = 83 */
  U = new_task(fx, "U", 200);
  START(th, fx->c, 5, 200);
  SET(th, U, 200);
  LINE(th, 3, 200);
  START(th, fx->d, 6, 205);
  SET(th, U, 205);
  LINE(th, 4, 205);
  YIELD(th, GEN2, 220);
  YIELD(th, GEN1, 222);
  ASSERT_TASK(U, 22, 0, 200, 222, 3);
  RESUME(th, GEN1, fx->c, 7, 3, 300, 1);
  RESUME(th, GEN2, fx->d, 8, 4, 303, 1);
  RETURN(th, 310);
  RETURN(th, 320);
  ASSERT_TASK(U, 42, 78, 200, 320, 1);
  ASSERT_LINE(fx->c, 3, 1, 22 + 20, 78);
  ASSERT_LINE(fx->d, 4, 1, 15 + 7, 83);
  ASSERT_SPAN(U);
  ASSERT_TASK(T, 40, 80, 0, 120, 1); /* T untouched */
}

static void test_throw_into_nested_awaits(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0), *U;
  /* The chain of test_coroutine_chain, ended by a throw: the exception is
   * thrown into the innermost frame B first, while A is still parked. B
   * resumes at 100 (under its own key), unwinds at 105; then A resumes at
   * 105 and unwinds at 110.
   *   T time: 0..20 + 100..110 = 30 (B's 100..105 and A's 105..110 are
   *           one stretch of the task); await: 20..100 = 80, once: A's
   *           parked 100..105 adds nothing, B runs meanwhile
   *   c line 1: time 20 + 5 = 25, await 20..105 = 85
   *   d line 2: time 15 + 5 = 20, await 20..100 = 80 */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th, fx->d, 2, 5);
  SET(th, T, 5);
  LINE(th, 2, 5);
  YIELD(th, GEN2, 20);
  YIELD(th, GEN1, 20);
  ASSERT_TASK(T, 20, 0, 0, 20, 3);
  RESUME(th, GEN2, fx->d, 3, 2, 100, 1); /* the inner one, stack empty */
  assert_int_equal(th->depth, 1);
  ASSERT_COUNTS(T, 1, 1);
  ASSERT_TASK(T, 20, 80, 0, 100, 3);
  UNWIND(th, 105);
  ASSERT_COUNTS(T, 0, 1);
  ASSERT_TASK(T, 25, 80, 0, 105, 2);
  RESUME(th, GEN1, fx->c, 4, 1, 105, 1);
  ASSERT_COUNTS(T, 1, 0);
  ASSERT_TASK(T, 25, 80, 0, 105, 2);
  UNWIND(th, 110);
  ASSERT_TASK(T, 30, 80, 0, 110, 1);
  ASSERT_COUNTS(T, 0, 0);
  ASSERT_SPAN(T);
  ASSERT_LINE(fx->c, 1, 1, 25, 85);
  ASSERT_LINE(fx->d, 2, 1, 20, 80);
  assert_int_equal(fx->e.nparked, 0);

  /* With a gap: U first seen at 200; A (line 3) 200.., B (line 4) from
   * 205, B parks at 220, A at 222; B is thrown into at 300 and unwinds at
   * 305; A resumes only at 308 (the task awaits again 305..308) and
   * unwinds at 310.
   *   U time: 22 + 5 + 2 = 29; await: 222..300 + 305..308 = 81; 110 in all
   *   c line 3: time 22 + 2, await 222..308 = 86
   *   d line 4: time 15 + 5, await 220..300 = 80 */
  U = new_task(fx, "U", 200);
  START(th, fx->c, 5, 200);
  SET(th, U, 200);
  LINE(th, 3, 200);
  START(th, fx->d, 6, 205);
  SET(th, U, 205);
  LINE(th, 4, 205);
  YIELD(th, GEN2, 220);
  YIELD(th, GEN1, 222);
  RESUME(th, GEN2, fx->d, 7, 4, 300, 1);
  UNWIND(th, 305);
  ASSERT_TASK(U, 27, 78, 200, 305, 2);
  RESUME(th, GEN1, fx->c, 8, 3, 308, 1);
  ASSERT_TASK(U, 27, 81, 200, 308, 2);
  UNWIND(th, 310);
  ASSERT_TASK(U, 29, 81, 200, 310, 1);
  ASSERT_SPAN(U);
  ASSERT_LINE(fx->c, 3, 1, 24, 86);
  ASSERT_LINE(fx->d, 4, 1, 20, 80);
  ASSERT_TASK(T, 30, 80, 0, 110, 1); /* T untouched */
}

static void test_generator_parked_while_task_runs(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0), *U;
  /* A (c, T) runs from 0 and starts a generator G (d, T) at 5, which
   * parks at its yield at 8 and stays parked. A goes on (line 2 from 10)
   * and parks at 30: only now does T await; A resumes at 50 and returns
   * at 60; G is still parked (T awaits) until it is dropped at 90.
   *   T time: 0..30 + 50..60 = 40 (G parked 8..30 adds no await: A runs)
   *   T await: 30..50 = 20 once (A and G both parked), + 60..90 = 50
   *   time + await = 90: the whole span, nothing twice
   *   c line 1: 0..10; c line 2: 10..30 + 50..60 = 30, await 20
   *   d line 1: time 3, await 8..90 = 82 */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th, fx->d, 2, 5);
  SET(th, T, 5);
  LINE(th, 1, 5);
  YIELD(th, GEN2, 8);
  ASSERT_TASK(T, 8, 0, 0, 8, 3);
  ASSERT_COUNTS(T, 1, 1);
  LINE(th, 2, 10);
  YIELD(th, GEN1, 30);
  ASSERT_TASK(T, 30, 0, 0, 30, 3);
  ASSERT_COUNTS(T, 0, 2);
  RESUME(th, GEN1, fx->c, 3, 2, 50, 1);
  ASSERT_TASK(T, 30, 20, 0, 50, 3);
  ASSERT_COUNTS(T, 1, 1);
  RETURN(th, 60);
  ASSERT_TASK(T, 40, 20, 0, 60, 2);
  ASSERT_COUNTS(T, 0, 1);
  DROP(GEN2, 90);
  ASSERT_TASK(T, 40, 50, 0, 90, 1);
  ASSERT_COUNTS(T, 0, 0);
  ASSERT_SPAN(T);
  ASSERT_LINE(fx->c, 1, 1, 10, 0);
  ASSERT_LINE(fx->c, 2, 1, 30, 20);
  ASSERT_LINE(fx->d, 1, 1, 3, 82);

  /* Three parked at once: U's A (c) from 100 starts generators G1 (d, 102,
   * parks 104) and G2 (d, 106, parks 107), then parks at 110: U awaits
   * 110..150 once, not three times. A resumes at 150 and steps G1 from 155
   * to 157 (nested: time, once), returns at 160. G1 is dropped at 170, G2
   * at 190: await 160..190.
   *   U time: 100..110 + 150..160 = 20; await: 40 + 30 = 70; span 90 */
  U = new_task(fx, "U", 100);
  START(th, fx->c, 4, 100);
  SET(th, U, 100);
  START(th, fx->d, 5, 102);
  SET(th, U, 102);
  YIELD(th, GEN2, 104);
  START(th, fx->d, 6, 106);
  SET(th, U, 106);
  YIELD(th, GEN3, 107);
  YIELD(th, GEN1, 110);
  ASSERT_COUNTS(U, 0, 3);
  ASSERT_TASK(U, 10, 0, 100, 110, 4);
  RESUME(th, GEN1, fx->c, 7, 0, 150, 1);
  ASSERT_TASK(U, 10, 40, 100, 150, 4);
  RESUME(th, GEN2, fx->d, 8, 0, 155, 1);
  ASSERT_COUNTS(U, 2, 1);
  YIELD(th, GEN2, 157);
  ASSERT_COUNTS(U, 1, 2);
  RETURN(th, 160);
  ASSERT_TASK(U, 20, 40, 100, 160, 3);
  DROP(GEN2, 170);
  ASSERT_TASK(U, 20, 50, 100, 170, 2);
  DROP(GEN3, 190);
  ASSERT_TASK(U, 20, 70, 100, 190, 1);
  ASSERT_COUNTS(U, 0, 0);
  ASSERT_SPAN(U);
  ASSERT_TASK(T, 40, 50, 0, 90, 1); /* T untouched */
}

static void test_two_tasks_interleaved(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T1 = new_task(fx, "T1", 0), *T2 = new_task(fx, "T2", 10);
  /* One loop thread: A (c, T1) runs 0..10, parks; B (d, T2) runs 10..25,
   * parks; A runs 30..40 and returns; B runs 50..70 and returns.
   *   T1: time 10 + 10 = 20, await 10..30 = 20
   *   T2: time 15 + 20 = 35, await 25..50 = 25 */
  START(th, fx->c, 1, 0);
  SET(th, T1, 0);
  LINE(th, 1, 0);
  YIELD(th, GEN1, 10);
  START(th, fx->d, 2, 10);
  SET(th, T2, 10);
  LINE(th, 1, 10);
  YIELD(th, GEN2, 25);
  ASSERT_TASK(T1, 10, 0, 0, 10, 2);
  ASSERT_TASK(T2, 15, 0, 10, 25, 2);
  RESUME(th, GEN1, fx->c, 3, 1, 30, 1);
  ASSERT_TASK(T2, 15, 0, 10, 25, 2); /* not accounted: untouched */
  RETURN(th, 40);
  RESUME(th, GEN2, fx->d, 4, 1, 50, 1);
  RETURN(th, 70);
  ASSERT_TASK(T1, 20, 20, 0, 40, 1);
  ASSERT_TASK(T2, 35, 25, 10, 70, 1);
  /* Each ran and waited without overlap: exactly its span. */
  ASSERT_SPAN(T1);
  ASSERT_SPAN(T2);
}

static void test_other_task_called_inside(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T1 = new_task(fx, "T1", 0), *T2 = new_task(fx, "T2", 10);
  /* f (T1) runs 0..30; g, attributed to T2, runs on top of it 10..20, and
   * calls f, attributed to T1 again, 12..18. A frame of another task on
   * top makes the task below wait:
   *   T1: time 0..10 + 12..18 + 20..30 = 26, await 10..12 + 18..20 = 4
   *   T2: time 10..12 + 18..20 = 4, await 12..18 = 6 */
  START(th, fx->f, 1, 0);
  SET(th, T1, 0);
  START(th, fx->g, 2, 10);
  assert_ptr_equal(lp_engine_caller_task(th), T1);
  SET(th, T2, 10);
  assert_ptr_equal(lp_engine_top(th)->paused, T1);
  ASSERT_COUNTS(T1, 0, 1);
  ASSERT_COUNTS(T2, 1, 0);
  ASSERT_TASK(T1, 10, 0, 0, 10, 2);
  START(th, fx->f, 3, 12);
  SET(th, T1, 12);
  assert_ptr_equal(lp_engine_top(th)->paused, T2);
  ASSERT_COUNTS(T1, 1, 1);
  ASSERT_COUNTS(T2, 0, 1);
  RETURN(th, 18);
  ASSERT_COUNTS(T1, 0, 1);
  ASSERT_COUNTS(T2, 1, 0);
  RETURN(th, 20);
  ASSERT_COUNTS(T1, 1, 0);
  ASSERT_COUNTS(T2, 0, 0);
  ASSERT_TASK(T2, 4, 6, 10, 20, 1);
  RETURN(th, 30);
  ASSERT_TASK(T1, 26, 4, 0, 30, 1);
  ASSERT_COUNTS(T1, 0, 0);
  ASSERT_SPAN(T1);
  ASSERT_SPAN(T2);
}

static void test_eager_task_first_step(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T1 = new_task(fx, "T1", 0), *T2, *T3;
  /* The creator A (c, T1) runs from 0; at 10 create_task() runs the new
   * task T2's coroutine B (d) eagerly, on top of A, until B's first
   * suspension at 15; A goes on and returns at 30. B resumes at 40 from
   * the loop and returns at 45.
   *   T1: time 0..10 + 15..30 = 25, await 10..15 = 5 (it waits for
   *       create_task())
   *   T2: time 10..15 + 40..45 = 10, await 15..40 = 25 */
  START(th, fx->c, 1, 0);
  SET(th, T1, 0);
  LINE(th, 1, 0);
  T2 = new_task(fx, "T2", 10);
  START(th, fx->d, 2, 10);
  SET(th, T2, 10);
  ASSERT_COUNTS(T1, 0, 1);
  ASSERT_TASK(T1, 10, 0, 0, 10, 2);
  LINE(th, 1, 10);
  YIELD(th, GEN2, 15);
  ASSERT_COUNTS(T1, 1, 0);
  ASSERT_COUNTS(T2, 0, 1);
  ASSERT_TASK(T1, 10, 5, 0, 15, 2);
  ASSERT_TASK(T2, 5, 0, 10, 15, 2);
  RETURN(th, 30);
  ASSERT_TASK(T1, 25, 5, 0, 30, 1);
  RESUME(th, GEN2, fx->d, 3, 1, 40, 1);
  assert_null(lp_engine_top(th)->paused); /* nothing below */
  RETURN(th, 45);
  ASSERT_TASK(T2, 10, 25, 10, 45, 1);
  ASSERT_SPAN(T1);
  ASSERT_SPAN(T2);
  ASSERT_LINE(fx->c, 1, 1, 30, 0);
  ASSERT_LINE(fx->d, 1, 1, 10, 25);

  /* A first step that ends the task at once: A (c, T1) from 50, T3's
   * coroutine runs on top 55..58 and returns.
   *   T1: +5 +12 time, +3 await; T3: time 3 */
  START(th, fx->c, 4, 50);
  SET(th, T1, 50);
  T3 = new_task(fx, "T3", 55);
  START(th, fx->d, 5, 55);
  SET(th, T3, 55);
  RETURN(th, 58);
  ASSERT_TASK(T3, 3, 0, 55, 58, 1);
  ASSERT_COUNTS(T1, 1, 0);
  RETURN(th, 70);
  ASSERT_TASK(T1, 42, 8, 0, 70, 1);
  /* T1 was idle 30..50: span 70 = 42 + 8 + 20. */
  assert_int_equal(T1->time + T1->await + 20, T1->last - T1->first);
}

static void test_generator_resumed_by_other_task(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T1, *T2 = new_task(fx, "T2", 0);
  /* A generator keeps the task it started in. G (c, T2) runs 0..5 and
   * parks. f (T1) runs from 10 and steps G from 20 to 26: G's task is
   * active then, and T1 waits for it, as for any frame of another task on
   * top of its own. f returns at 30; G is dropped at 40.
   *   T2: time 5 + 6 = 11, await 5..20 + 26..40 = 29; span 40
   *   T1: time 10..20 + 26..30 = 14, await 20..26 = 6; span 20 */
  START(th, fx->c, 1, 0);
  SET(th, T2, 0);
  LINE(th, 1, 0);
  YIELD(th, GEN1, 5);
  T1 = new_task(fx, "T1", 10);
  START(th, fx->f, 2, 10);
  SET(th, T1, 10);
  LINE(th, 1, 10);
  RESUME(th, GEN1, fx->c, 3, 1, 20, 1);
  assert_ptr_equal(lp_engine_top(th)->paused, T1);
  ASSERT_COUNTS(T1, 0, 1);
  ASSERT_COUNTS(T2, 1, 0);
  ASSERT_TASK(T2, 5, 15, 0, 20, 2);
  ASSERT_TASK(T1, 10, 0, 10, 20, 2);
  LINE(th, 2, 22);
  YIELD(th, GEN1, 26);
  ASSERT_COUNTS(T1, 1, 0);
  ASSERT_COUNTS(T2, 0, 1);
  RETURN(th, 30);
  ASSERT_TASK(T1, 14, 6, 10, 30, 1);
  DROP(GEN1, 40);
  ASSERT_TASK(T2, 11, 29, 0, 40, 1);
  ASSERT_SPAN(T1);
  ASSERT_SPAN(T2);
  ASSERT_LINE(fx->c, 1, 1, 5 + 2, 15);
  ASSERT_LINE(fx->c, 2, 1, 4, 14);
  ASSERT_LINE(fx->f, 1, 1, 20, 0);
}

static void test_two_threads_one_task(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  lp_task_t *T = new_task(fx, "T", 0);
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* Frames of one task on two threads at once (the engine does not care
   * how): f 0..40 on thread 1, g 10..30 on thread 2: time 40, once. Then c
   * runs on thread 1 50..60 and d on thread 2 52..62, both park; c resumes
   * at 80 and returns at 85, d stays parked until dropped at 90.
   *   T: time 40 + 50..62 + 80..85 = 57, await 62..80 + 85..90 = 23 */
  START(th, fx->f, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th2, fx->g, 2, 10);
  SET(th2, T, 10);
  assert_null(lp_engine_top(th2)->paused);
  LINE(th2, 1, 10);
  ASSERT_COUNTS(T, 2, 0);
  RETURN(th2, 30);
  RETURN(th, 40);
  ASSERT_TASK(T, 40, 0, 0, 40, 1);
  ASSERT_LINE(fx->f, 1, 1, 40, 0);
  ASSERT_LINE(fx->g, 1, 1, 20, 0);
  START(th, fx->c, 3, 50);
  SET(th, T, 50);
  START(th2, fx->d, 4, 52);
  SET(th2, T, 52);
  YIELD(th, GEN1, 60);
  YIELD(th2, GEN2, 62);
  ASSERT_COUNTS(T, 0, 2);
  ASSERT_TASK(T, 52, 0, 0, 62, 3);
  RESUME(th, GEN1, fx->c, 5, 0, 80, 1);
  RETURN(th, 85);
  DROP(GEN2, 90);
  ASSERT_TASK(T, 57, 23, 0, 90, 1);
  /* Idle 40..50 only. */
  assert_int_equal(T->time + T->await + 10, T->last - T->first);
}

static void test_no_task(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  lp_task_t *T = new_task(fx, "T", 0);
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* Frames never attributed, or attributed to NULL, running or parked,
   * on any thread: T is untouched; the settle finds it idle. */
  START(th, fx->f, 1, 0);
  LINE(th, 1, 0);
  START(th, fx->g, 2, 10);
  SET(th, NULL, 10);
  RETURN(th, 20);
  RETURN(th, 30);
  START(th2, fx->d, 3, 0);
  LINE(th2, 1, 0);
  YIELD(th2, GEN2, 5);
  lp_engine_settle(&fx->e, 40);
  DROP(GEN2, 45);
  ASSERT_TASK(T, 0, 0, 0, 0, 1);
  ASSERT_COUNTS(T, 0, 0);
  ASSERT_LINE(fx->d, 1, 1, 5, 40); /* the lines are counted as ever */
  ASSERT_LINE(fx->f, 1, 1, 30, 0);

  /* A task frame called from a frame with no task: c (T) 110..120,
   * parked 120..150 (the frame below returns meanwhile), 150..160. */
  START(th, fx->f, 4, 100);
  START(th, fx->c, 5, 110);
  assert_null(lp_engine_caller_task(th));
  SET(th, T, 110);
  assert_null(lp_engine_top(th)->paused);
  LINE(th, 1, 110);
  YIELD(th, GEN1, 120);
  RETURN(th, 130); /* f */
  RESUME(th, GEN1, fx->c, 6, 1, 150, 1);
  RETURN(th, 160);
  ASSERT_TASK(T, 20, 30, 0, 160, 1);

  /* A frame with no task inside a task frame: callee time of the task's
   * frame, as any callee; the task goes on running. c (T) 200..230:
   * +30. */
  START(th, fx->c, 7, 200);
  SET(th, T, 200);
  START(th, fx->f, 8, 210);
  ASSERT_COUNTS(T, 1, 0);
  RETURN(th, 220);
  RETURN(th, 230);
  ASSERT_TASK(T, 50, 30, 0, 230, 1);
  ASSERT_WITHIN_SPAN(T);
  /* And a frame of another task above that frame with no task: nothing
   * pauses T (the frame right below has no task). */
  {
    lp_task_t *U = new_task(fx, "U", 300);
    START(th, fx->c, 9, 300);
    SET(th, T, 300);
    START(th, fx->f, 10, 305);
    START(th, fx->d, 11, 310);
    SET(th, U, 310);
    assert_null(lp_engine_top(th)->paused);
    ASSERT_COUNTS(T, 1, 0);
    ASSERT_COUNTS(U, 1, 0);
    lp_engine_detach(&fx->e, 320, NULL);
    ASSERT_TASK(T, 70, 30, 0, 320, 1);
    ASSERT_TASK(U, 10, 0, 300, 320, 1);
  }
}

static void test_frame_end_releases(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
  /* Return: 0..10. */
  START(th, fx->f, 1, 0);
  SET(th, T, 0);
  assert_int_equal(T->refs, 2);
  RETURN(th, 10);
  assert_int_equal(T->refs, 1);
  /* Unwind: 10..20. */
  START(th, fx->f, 2, 10);
  SET(th, T, 10);
  assert_int_equal(T->refs, 2);
  UNWIND(th, 20);
  assert_int_equal(T->refs, 1);
  /* Drop of a parked frame: ran 20..30, parked 30..45. */
  START(th, fx->c, 3, 20);
  SET(th, T, 20);
  LINE(th, 1, 20);
  YIELD(th, GEN1, 30);
  assert_int_equal(T->refs, 2);
  {
    uintptr_t u = 0;
    assert_int_equal(lp_engine_drop(&fx->e, GEN3, 40, &u), 0); /* none */
  }
  assert_int_equal(T->refs, 2);
  ASSERT_TASK(T, 30, 0, 0, 30, 2); /* a drop of nothing touches nothing */
  DROP(GEN1, 45);
  ASSERT_TASK(T, 30, 15, 0, 45, 1);
  ASSERT_COUNTS(T, 0, 0);
  /* Detach: f (T) from 50 calls g (T) at 55, which calls c (T) at 56; c
   * parks at 58 (f and g run: time goes on). Detached at 60: f and g end
   * (time 50..60 = 10), the parked c keeps its reference, and T awaits
   * until it is dropped at 70 (await +10). Idle 45..50. */
  START(th, fx->f, 4, 50);
  SET(th, T, 50);
  START(th, fx->g, 5, 55);
  SET(th, T, 55);
  START(th, fx->c, 6, 56);
  SET(th, T, 56);
  YIELD(th, GEN2, 58);
  assert_int_equal(T->refs, 4);
  ASSERT_COUNTS(T, 2, 1);
  lp_engine_detach(&fx->e, 60, NULL);
  assert_int_equal(th->depth, 0);
  ASSERT_TASK(T, 40, 15, 0, 60, 2);
  ASSERT_COUNTS(T, 0, 1);
  DROP(GEN2, 70);
  ASSERT_TASK(T, 40, 25, 0, 70, 1);
  /* A yield over a stale key ends the old frame: c (T) runs 80..90, parks
   * under GEN1 (await 90..100); d (T) runs 100..105 and parks under GEN1
   * too: c's suspension ends at 105 and its reference goes; T runs
   * 100..105 (time +10 +5 in all) and awaits again until d is dropped at
   * 125 (+20). Idle 70..80. */
  START(th, fx->c, 7, 80);
  SET(th, T, 80);
  YIELD(th, GEN1, 90);
  START(th, fx->d, 8, 100);
  SET(th, T, 100);
  assert_int_equal(T->refs, 3);
  ASSERT_COUNTS(T, 1, 1);
  YIELD(th, GEN1, 105);
  assert_int_equal(fx->e.nparked, 1);
  ASSERT_COUNTS(T, 0, 1);
  ASSERT_TASK(T, 55, 35, 0, 105, 2);
  DROP(GEN1, 125);
  ASSERT_TASK(T, 55, 55, 0, 125, 1);
  ASSERT_COUNTS(T, 0, 0);
  assert_int_equal(T->time + T->await + 5 + 10, T->last - T->first);
}

static void test_failed_yield_releases(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0), *T1, *T2;
  uintptr_t u = 0;
  find_t f;
  /* The pool is empty: parking needs memory. c (T) runs 0..10, and its
   * yield fails: the frame is forgotten (ran 10, no await), the
   * reference released. */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  lp_engine_top(th)->user = 0x77;
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_yield(&fx->e, th, GEN1, 10, &u), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(u, 0x77);
  assert_int_equal(th->depth, 0);
  assert_int_equal(fx->e.nparked, 0);
  ASSERT_TASK(T, 10, 0, 0, 10, 1);
  ASSERT_COUNTS(T, 0, 0);
  ASSERT_LINE(fx->c, 1, 1, 10, 0);
  /* The object dies: no frame left, T is retired whole at once. */
  assert_int_equal(lp_tasks_unref(&fx->e.tasks, T), 0);
  f = find_task(fx, 1);
  assert_non_null(f.found);
  assert_int_equal(f.live, 0);
  assert_int_equal(f.in_live_part, 0);
  ASSERT_TASK(f.found, 10, 0, 0, 10, 0);
  assert_int_equal(f.nfolds, 0);

  /* A failed yield of a frame that paused the task below: f (T1) from 20,
   * c (T2) on top from 25 (T1 waits), c's yield fails at 30: T2 ran 5,
   * never parked; T1 runs again from 30 and returns at 40.
   *   T1: time 5 + 10, await 5; T2: time 5 */
  T1 = new_task(fx, "T1", 20);
  T2 = new_task(fx, "T2", 25);
  START(th, fx->f, 2, 20);
  SET(th, T1, 20);
  START(th, fx->c, 3, 25);
  SET(th, T2, 25);
  ASSERT_COUNTS(T1, 0, 1);
  LINE(th, 2, 25);
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_yield(&fx->e, th, GEN1, 30, &u), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(u, 0);
  assert_int_equal(th->depth, 1);
  ASSERT_TASK(T2, 5, 0, 25, 30, 1);
  ASSERT_COUNTS(T2, 0, 0);
  ASSERT_COUNTS(T1, 1, 0);
  ASSERT_TASK(T1, 5, 5, 20, 30, 2);
  RETURN(th, 40);
  ASSERT_TASK(T1, 15, 5, 20, 40, 1);
  ASSERT_SPAN(T1);
  ASSERT_SPAN(T2);
  ASSERT_LINE(fx->c, 2, 1, 5, 0);
}

static void test_failed_resume_keeps_parked(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  lp_task_t *T = new_task(fx, "T", 0);
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* c (T) runs 0..10 and parks. Its resume at 20 on thread 2 (whose
   * stack has no memory yet) fails: it stays parked, T is not touched and
   * still awaits. It resumes at 50 and returns at 60.
   *   T: time 10 + 10, await 10..50 = 40 */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  YIELD(th, GEN1, 10);
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_engine_resume(&fx->e, th2, GEN1, fx->c, 2, 1, 20),
                   LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(th2->depth, 0);
  assert_int_equal(fx->e.nparked, 1);
  ASSERT_COUNTS(T, 0, 1);
  ASSERT_TASK(T, 10, 0, 0, 10, 2);
  RESUME(th2, GEN1, fx->c, 3, 1, 50, 1);
  ASSERT_TASK(T, 10, 40, 0, 50, 2);
  RETURN(th2, 60);
  ASSERT_TASK(T, 20, 40, 0, 60, 1);
  ASSERT_SPAN(T);
  ASSERT_LINE(fx->c, 1, 1, 20, 40);
}

static void test_retired_after_last_frame(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0), *U, *V;
  find_t f;
  /* The chain of test_coroutine_chain; T's object dies at 30, while both
   * frames are parked: T stays live until the last of them ends. */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th, fx->d, 2, 5);
  SET(th, T, 5);
  LINE(th, 2, 5);
  YIELD(th, GEN2, 20);
  YIELD(th, GEN1, 20);
  assert_int_equal(lp_tasks_unref(&fx->e.tasks, T), 0);
  assert_int_equal(T->refs, 2);
  f = find_task(fx, 1);
  assert_int_equal(f.live, 1);
  RESUME(th, GEN1, fx->c, 3, 1, 100, 1);
  RESUME(th, GEN2, fx->d, 4, 2, 100, 1);
  RETURN(th, 110);
  assert_int_equal(T->refs, 1);
  assert_int_equal(find_task(fx, 1).live, 1);
  RETURN(th, 120); /* the last reference: retired (T is not ours now) */
  f = find_task(fx, 1);
  assert_non_null(f.found);
  assert_int_equal(f.live, 0);
  ASSERT_TASK(f.found, 40, 80, 0, 120, 0);
  ASSERT_COUNTS(f.found, 0, 0);
  assert_string_equal(f.found->name, "T");
  assert_int_equal(f.found->folded, 0);

  /* Ended by a drop: U first seen at 200, c runs 200..210, parks; the
   * object dies at 220; dropped at 250: time 10, await 40. */
  U = new_task(fx, "U", 200);
  START(th, fx->c, 5, 200);
  SET(th, U, 200);
  YIELD(th, GEN1, 210);
  assert_int_equal(lp_tasks_unref(&fx->e.tasks, U), 0);
  assert_int_equal(find_task(fx, 2).live, 1);
  DROP(GEN1, 250);
  f = find_task(fx, 2);
  assert_int_equal(f.live, 0);
  ASSERT_TASK(f.found, 10, 40, 200, 250, 0);

  /* Ended by a detach: V at 300, f runs 300..340 (object dead at 310). */
  V = new_task(fx, "V", 300);
  START(th, fx->f, 6, 300);
  SET(th, V, 300);
  assert_int_equal(lp_tasks_unref(&fx->e.tasks, V), 0);
  assert_int_equal(find_task(fx, 3).live, 1);
  lp_engine_detach(&fx->e, 340, NULL);
  f = find_task(fx, 3);
  assert_int_equal(f.live, 0);
  ASSERT_TASK(f.found, 40, 0, 300, 340, 0);
  /* All three kept whole, none live. */
  assert_int_equal(find_task(fx, 1).live, 0);
  assert_int_equal(find_task(fx, 3).in_live_part, 0);
  assert_int_equal(find_task(fx, 3).nfolds, 0);
}

static void test_adopted_frame(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 90);
  /* A coroutine running since before profiling started is adopted by a
   * resume at 100 and attributed then: 100..130, parked 130..150,
   * 150..155. The 90..100 before any frame is idle. */
  RESUME(th, GEN1, fx->c, 1, 4, 100, 0);
  assert_null(lp_engine_top(th)->task);
  SET(th, T, 100);
  assert_int_equal(T->refs, 2);
  ASSERT_COUNTS(T, 1, 0);
  YIELD(th, GEN1, 130);
  RESUME(th, GEN1, fx->c, 2, 4, 150, 1);
  RETURN(th, 155);
  ASSERT_TASK(T, 35, 20, 90, 155, 1);
  ASSERT_LINE(fx->c, 4, 0, 35, 20);
  assert_int_equal(T->time + T->await + 10, T->last - T->first);
}

static void test_settle(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  lp_task_t *T = new_task(fx, "T", 0), *U = new_task(fx, "U", 0);
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* Thread 1: A (c, T) runs from 0; B (g, T) nested from 20 to 45; A
   * returns at 50. Thread 2: C (d, U) runs 0..10, parks, resumes at 60,
   * returns at 70. Settled at 40 (twice), and at 100 when idle.
   *   at 40: T time 0..40 = 40 (once); U time 10, await 10..40 = 30
   *   end:   T time 50; U await 10..60 = 50, time 10 + 10 = 20 */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th2, fx->d, 2, 0);
  SET(th2, U, 0);
  LINE(th2, 1, 0);
  YIELD(th2, GEN1, 10);
  START(th, fx->g, 3, 20);
  SET(th, T, 20);
  LINE(th, 1, 20);
  lp_engine_settle(&fx->e, 40);
  ASSERT_TASK(T, 40, 0, 0, 40, 3);
  ASSERT_TASK(U, 10, 30, 0, 40, 2);
  assert_int_equal(T->mark, 40);
  assert_int_equal(U->mark, 40);
  ASSERT_LINE(fx->c, 1, 1, 40, 0);
  ASSERT_LINE(fx->g, 1, 1, 20, 0);
  ASSERT_LINE(fx->d, 1, 1, 10, 30);
  lp_engine_settle(&fx->e, 40);
  ASSERT_TASK(T, 40, 0, 0, 40, 3);
  ASSERT_TASK(U, 10, 30, 0, 40, 2);
  RETURN(th, 45);
  RETURN(th, 50);
  RESUME(th2, GEN1, fx->d, 4, 1, 60, 1);
  RETURN(th2, 70);
  ASSERT_TASK(T, 50, 0, 0, 50, 1);
  ASSERT_TASK(U, 20, 50, 0, 70, 1);
  lp_engine_settle(&fx->e, 100);
  ASSERT_TASK(T, 50, 0, 0, 50, 1);
  ASSERT_TASK(U, 20, 50, 0, 70, 1);
  ASSERT_SPAN(T);
  ASSERT_SPAN(U);
  ASSERT_LINE(fx->c, 1, 1, 50, 0);
  ASSERT_LINE(fx->g, 1, 1, 25, 0);
  ASSERT_LINE(fx->d, 1, 1, 20, 50);
  ASSERT_MAX(fx->c, 1, 50); /* one stretch 0..50: a call does not end it */
}

static void test_settle_last_seen(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T, *U = new_task(fx, "U", 0);
  /* U's frame parks at 10; a settle at 40 counts await 10..40, and U was
   * seen up to 40: last 40. */
  START(th, fx->c, 1, 0);
  SET(th, U, 0);
  YIELD(th, GEN1, 10);
  lp_engine_settle(&fx->e, 40);
  ASSERT_TASK(U, 10, 30, 0, 40, 2);
  ASSERT_SPAN(U);
  DROP(GEN1, 40);
  /* T's frame runs from 50; a settle at 90 counts time 50..90 = 40, so T
   * was seen up to 90 as well: last must be 90, or time (40) exceeds the
   * span last - first (T first seen at 50). */
  T = new_task(fx, "T", 50);
  START(th, fx->f, 2, 50);
  SET(th, T, 50);
  lp_engine_settle(&fx->e, 90);
  assert_int_equal(T->time, 40);
  ASSERT_WITHIN_SPAN(T);
  assert_int_equal(T->last, 90);
  RETURN(th, 95);
  ASSERT_TASK(T, 45, 0, 50, 95, 1);
  /* U, idle since 40, was not seen at 90. */
  ASSERT_TASK(U, 10, 30, 0, 40, 1);
}

/* The nested throw of test_throw_into_nested_awaits (gap variant), with
 * or without settles on the way: a settle changes no total, and no Max.
 *   T time 0..20 + 100..105 + 108..110 = 27, await 20..100 + 105..108 = 83
 *   c line 1: time 20 + 2, await 20..108 = 88, max 20
 *   d line 2: time 15 + 5, await 20..100 = 80, max 15 */
static void throw_scenario(fixture_t *fx, int settles) {
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  if (settles)
    lp_engine_settle(&fx->e, 3);
  START(th, fx->d, 2, 5);
  SET(th, T, 5);
  LINE(th, 2, 5);
  if (settles)
    lp_engine_settle(&fx->e, 12);
  YIELD(th, GEN2, 20);
  YIELD(th, GEN1, 20);
  if (settles) {
    lp_engine_settle(&fx->e, 20);
    lp_engine_settle(&fx->e, 50);
    ASSERT_TASK(T, 20, 30, 0, 50, 3);
    ASSERT_LINE(fx->c, 1, 1, 20, 30);
    ASSERT_LINE(fx->d, 2, 1, 15, 30);
  }
  RESUME(th, GEN2, fx->d, 3, 2, 100, 1);
  if (settles) {
    lp_engine_settle(&fx->e, 102);
    ASSERT_TASK(T, 22, 80, 0, 102, 3);
  }
  UNWIND(th, 105);
  if (settles)
    lp_engine_settle(&fx->e, 106);
  RESUME(th, GEN1, fx->c, 4, 1, 108, 1);
  if (settles)
    lp_engine_settle(&fx->e, 109);
  UNWIND(th, 110);
  if (settles)
    lp_engine_settle(&fx->e, 150);
  ASSERT_TASK(T, 27, 83, 0, 110, 1);
  ASSERT_SPAN(T);
  ASSERT_LINE(fx->c, 1, 1, 22, 88);
  ASSERT_LINE(fx->d, 2, 1, 20, 80);
  ASSERT_MAX(fx->c, 1, 20);
  ASSERT_MAX(fx->d, 2, 15);
}

static void test_settle_changes_nothing(void **state) {
  fixture_t *fx = *state;
  throw_scenario(fx, 0);
  fixture_reset(fx);
  throw_scenario(fx, 1);
}

static void test_generator_resumed_outside_its_task(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
  /* A (f, T) runs 0..50 and starts a generator c (T) at 5, which parks at
   * 8: A runs on, so T's time goes on (0..50) and nothing awaits. After A
   * returns, only the parked generator is left: T awaits 50..200. Plain
   * code resumes it at 200: T runs 200..210, then awaits again until the
   * drop at 300.
   *   T: time 50 + 10 = 60, await 150 + 90 = 240; span 300 */
  START(th, fx->f, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th, fx->c, 2, 5);
  SET(th, T, 5);
  LINE(th, 1, 5);
  YIELD(th, GEN1, 8);
  ASSERT_COUNTS(T, 1, 1);
  RETURN(th, 50);
  ASSERT_TASK(T, 50, 0, 0, 50, 2);
  ASSERT_COUNTS(T, 0, 1);
  RESUME(th, GEN1, fx->c, 3, 1, 200, 1);
  ASSERT_TASK(T, 50, 150, 0, 200, 2);
  LINE(th, 2, 205);
  YIELD(th, GEN1, 210);
  ASSERT_TASK(T, 60, 150, 0, 210, 2);
  DROP(GEN1, 300);
  ASSERT_TASK(T, 60, 240, 0, 300, 1);
  ASSERT_SPAN(T);
  ASSERT_LINE(fx->c, 1, 1, 3 + 5, 192);
  ASSERT_LINE(fx->c, 2, 1, 5, 90);
  ASSERT_LINE(fx->f, 1, 1, 50, 0);
}

static void test_outer_resumed_nested(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
  /* The other way round: generator c (T) runs 0..10 and parks (T awaits
   * 10..20). A (f, T) starts at 20 and resumes it at 30; it parks again at
   * 40 while A runs on (no await), A returns at 60, and T awaits until the
   * generator is dropped at 100.
   *   T: time 10 + 20..60 = 50, await 10 + 40 = 50; span 100 */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  YIELD(th, GEN1, 10);
  START(th, fx->f, 2, 20);
  SET(th, T, 20);
  ASSERT_TASK(T, 10, 10, 0, 20, 3);
  RESUME(th, GEN1, fx->c, 3, 1, 30, 1);
  assert_null(lp_engine_top(th)->paused);
  ASSERT_COUNTS(T, 2, 0);
  ASSERT_TASK(T, 20, 10, 0, 30, 3);
  YIELD(th, GEN1, 40);
  ASSERT_COUNTS(T, 1, 1);
  RETURN(th, 60);
  ASSERT_TASK(T, 50, 10, 0, 60, 2);
  DROP(GEN1, 100);
  ASSERT_TASK(T, 50, 50, 0, 100, 1);
  ASSERT_SPAN(T);
  ASSERT_LINE(fx->c, 1, 1, 20, 20 + 60);
}

/* ---- random sequences against a model ----
 *
 * Two threads, up to MAXLIVE tasks at a time (MAXT per sequence), frames of
 * the four functions started, attributed (to the caller's task, to any
 * live task, or to none), parked under fresh or stale keys, resumed on
 * either thread, adopted, dropped, returned, unwound and detached; task
 * objects die; some yields and resumes run out of memory. Task 0's
 * coroutine O lives from the first event to the last, so task 0 is never
 * idle.
 *
 * The model keeps only the frames (which task, where) and derives every
 * task's state from them at each event: a frame of task X on a stack waits
 * when the frame right above it belongs to another task, and runs
 * otherwise; X is active when one of its frames runs, awaiting when it has
 * live frames but none runs, idle when it has none. Time, await and idle
 * are summed over every interval between events; a task was last seen at
 * an event that changed its frames' states, at its frame's attribution and
 * at a settle that found it active or awaiting. Line counters are modelled
 * per frame. After every event the engine must agree on counts, refs,
 * first, last and the totals (the engine's up to its mark, plus the open
 * interval), and time + await + idle must be last - first; a retired task
 * is checked in the registry at its retirement; lines at settles and at the
 * end. The settle decisions come from their own generator, so a sequence
 * with settles has the same events as without, and the same final totals:
 * that is checked too. */

static uint64_t rng, rng_settle;

static uint32_t rnd_from(uint64_t *s, uint32_t n) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (uint32_t)((*s * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

static uint32_t rnd(uint32_t n) { return rnd_from(&rng, n); }

enum { NTH = 2, NFN = 4, MAXD = 40, MAXP = 64, MAXT = 120, MAXLIVE = 6 };

typedef struct {
  int fn;           /* index into model_t.fn */
  int task;         /* index into model_t.tk; -1: none */
  int o;            /* 1: O */
  int32_t line;     /* 0: no line yet */
  uint64_t mark;    /* its line is counted up to here */
  uint64_t stretch; /* start of the current uninterrupted stretch */
  uintptr_t key;    /* while parked */
} rframe_t;

typedef struct {
  lp_task_t *rec;   /* the engine's record; NULL once retired */
  uint64_t id;
  int obj;          /* the task object lives */
  uint64_t time, await, idle; /* summed up to mark */
  uint64_t mark, first, last;
  uint64_t idle_at_last; /* idle time between first and last */
  uint32_t running, parked, frames; /* derived from the frames */
} rtask_t;

typedef struct {
  fixture_t *fx;
  lp_func_t *fn[NFN];
  lp_thread_t *th[NTH];
  rframe_t st[NTH][MAXD];
  int depth[NTH];
  rframe_t pk[MAXP];
  int npk;
  rtask_t tk[MAXT];
  int ntk;
  lp_line_t ln[NFN][21];
  uint64_t now;
  uintptr_t next_key, ident;
  uint32_t pre[MAXT][2]; /* each task's (running, parked) before the event */
} model_t;

/* The final totals of a sequence, by task index and by line. */
typedef struct {
  int ntk;
  uint64_t tk[MAXT][4]; /* time, await, first, last */
  lp_line_t ln[NFN][21];
} rsnap_t;

static void derive(model_t *m) {
  int i, j;
  for (i = 0; i < m->ntk; i++)
    m->tk[i].running = m->tk[i].parked = m->tk[i].frames = 0;
  for (j = 0; j < NTH; j++) {
    for (i = 0; i < m->depth[j]; i++) {
      const rframe_t *fr = &m->st[j][i], *up;
      rtask_t *x;
      if (fr->task < 0)
        continue;
      x = &m->tk[fr->task];
      x->frames++;
      up = i + 1 < m->depth[j] ? &m->st[j][i + 1] : NULL;
      if (up != NULL && up->task >= 0 && up->task != fr->task)
        x->parked++;
      else
        x->running++;
    }
  }
  for (i = 0; i < m->npk; i++) {
    if (m->pk[i].task >= 0) {
      m->tk[m->pk[i].task].frames++;
      m->tk[m->pk[i].task].parked++;
    }
  }
}

/* Before an event at m->now: every task's intervals up to now, in the
 * state its frames were in. */
static void before(model_t *m) {
  int i;
  derive(m);
  for (i = 0; i < m->ntk; i++) {
    rtask_t *x = &m->tk[i];
    uint64_t dt;
    if (x->rec == NULL)
      continue;
    dt = m->now - x->mark;
    if (x->running)
      x->time += dt;
    else if (x->parked)
      x->await += dt;
    else
      x->idle += dt;
    x->mark = m->now;
    m->pre[i][0] = x->running;
    m->pre[i][1] = x->parked;
  }
}

static void seen(rtask_t *x, uint64_t t) {
  x->last = t;
  x->idle_at_last = x->idle;
}

/* The engine agrees with the model on every live task. */
static void check_tasks(model_t *m) {
  int i, j;
  for (j = 0; j < NTH; j++)
    assert_int_equal(m->th[j]->depth, m->depth[j]);
  assert_int_equal(m->fx->e.nparked, m->npk);
  for (i = 0; i < m->ntk; i++) {
    const rtask_t *x = &m->tk[i];
    const lp_task_t *r = x->rec;
    uint64_t open;
    if (r == NULL)
      continue;
    assert_int_equal(r->id, x->id);
    assert_int_equal(r->refs, x->obj + x->frames);
    assert_int_equal(r->running, x->running);
    assert_int_equal(r->parked, x->parked);
    assert_int_equal(r->first, x->first);
    assert_int_equal(r->last, x->last);
    assert_true(r->last <= r->mark && r->mark <= m->now);
    open = m->now - r->mark;
    assert_int_equal(r->time + (x->running ? open : 0), x->time);
    assert_int_equal(r->await + (!x->running && x->parked ? open : 0),
                     x->await);
    assert_int_equal(r->time + r->await + x->idle_at_last,
                     r->last - r->first);
  }
  /* O keeps task 0 running or awaiting throughout. */
  assert_int_equal(m->tk[0].idle, 0);
}

/* A task with no reference left was retired by the event: it is kept
 * whole in the registry, with the model's totals. */
static void check_retired(model_t *m, rtask_t *x) {
  find_t f = find_task(m->fx, x->id);
  assert_non_null(f.found);
  assert_int_equal(f.live, 0);
  ASSERT_TASK(f.found, x->time, x->await, x->first, x->last, 0);
  ASSERT_COUNTS(f.found, 0, 0);
  assert_int_equal(f.found->time + f.found->await + x->idle_at_last,
                   f.found->last - f.found->first);
  x->rec = NULL;
}

/* After an event: a task whose frames changed state was seen now, as is
 * a task attributed to a frame now (set: its index, or -1). */
static void after(model_t *m, int set) {
  int i;
  derive(m);
  for (i = 0; i < m->ntk; i++) {
    rtask_t *x = &m->tk[i];
    int was = m->pre[i][0] || m->pre[i][1];
    int moved = x->running != m->pre[i][0] || x->parked != m->pre[i][1];
    if (x->rec == NULL)
      continue;
    if ((moved && was) || i == set)
      seen(x, m->now);
    if (x->obj + x->frames == 0)
      check_retired(m, x);
  }
  check_tasks(m);
}

static lp_line_t *mline(model_t *m, const rframe_t *fr) {
  return fr->line ? &m->ln[fr->fn][fr->line] : NULL;
}

/* The running frame fr's stretch ends now. */
static void m_close(model_t *m, rframe_t *fr) {
  lp_line_t *l = mline(m, fr);
  if (l != NULL) {
    l->time += m->now - fr->mark;
    if (m->now - fr->stretch > l->max)
      l->max = m->now - fr->stretch;
  }
}

/* The parked frame fr's suspension ends now. */
static void m_unpark(model_t *m, rframe_t *fr) {
  lp_line_t *l = mline(m, fr);
  if (l != NULL)
    l->await += m->now - fr->mark;
  fr->mark = m->now;
}

static void check_lines(model_t *m) {
  int f, l;
  for (f = 0; f < NFN; f++) {
    for (l = 1; l <= 20; l++) {
      const lp_line_t *a = lp_func_line(m->fn[f], l), *b = &m->ln[f][l];
      assert_non_null(a);
      assert_int_equal(a->hits, b->hits);
      assert_int_equal(a->time, b->time);
      assert_int_equal(a->await, b->await);
      assert_int_equal(a->max, b->max);
    }
  }
}

static rframe_t *top_of(model_t *m, int j) {
  return m->depth[j] ? &m->st[j][m->depth[j] - 1] : NULL;
}

/* Index of a random live task (retired ones excluded), or -1. */
static int any_task(model_t *m) {
  int idx[MAXT], n = 0, i;
  for (i = 0; i < m->ntk; i++)
    if (m->tk[i].rec != NULL)
      idx[n++] = i;
  return n ? idx[rnd((uint32_t)n)] : -1;
}

/* Index of a random parked frame other than O, or -1. */
static int any_parked(model_t *m) {
  int idx[MAXP], n = 0, i;
  for (i = 0; i < m->npk; i++)
    if (!m->pk[i].o)
      idx[n++] = i;
  return n ? idx[rnd((uint32_t)n)] : -1;
}

static int find_parked(model_t *m, uintptr_t key) {
  int i;
  for (i = 0; i < m->npk; i++)
    if (m->pk[i].key == key)
      return i;
  return -1;
}

static void unpark_at(model_t *m, int i) {
  m->pk[i] = m->pk[--m->npk];
}

static void op_line(model_t *m, int j, int32_t l) {
  rframe_t *fr = top_of(m, j);
  lp_line_t *ln;
  assert_int_equal(
      lp_engine_line(&m->fx->e, lp_engine_top(m->th[j]), l, m->now), 0);
  m_close(m, fr);
  fr->line = l;
  ln = mline(m, fr);
  ln->hits++;
  fr->mark = fr->stretch = m->now;
}

static void op_start(model_t *m, int j, int fn) {
  rframe_t fr = {fn, -1, 0, 0, m->now, m->now, 0};
  before(m);
  assert_int_equal(
      lp_engine_start(&m->fx->e, m->th[j], m->fn[fn], m->ident++, m->now), 0);
  m->st[j][m->depth[j]++] = fr;
  after(m, -1);
}

/* Attributes the top frame of thread j to task x (-1: NULL). */
static void op_set(model_t *m, int j, int x) {
  rframe_t *fr = top_of(m, j);
  int took = fr != NULL && fr->task < 0 && x >= 0;
  before(m);
  lp_engine_set_task(&m->fx->e, m->th[j], x >= 0 ? m->tk[x].rec : NULL,
                     m->now);
  if (took)
    fr->task = x;
  after(m, took ? x : -1);
}

/* The task of the frame below the top of thread j, or -1. */
static int caller_task(model_t *m, int j) {
  return m->depth[j] >= 2 ? m->st[j][m->depth[j] - 2].task : -1;
}

static void op_return(model_t *m, int j, int unwind) {
  before(m);
  if (unwind)
    lp_engine_unwind(&m->fx->e, m->th[j], m->now);
  else
    lp_engine_return(&m->fx->e, m->th[j], m->now);
  m_close(m, top_of(m, j));
  m->depth[j]--;
  after(m, -1);
}

/* The top frame of thread j parks under key (fresh, or a parked frame's:
 * that frame ends); fail: with every allocation failing. */
static void op_yield(model_t *m, int j, uintptr_t key, int fail) {
  rframe_t *fr = top_of(m, j);
  uintptr_t u = 0xbad;
  int rc, stale = find_parked(m, key);
  before(m);
  if (fail)
    lp_test_alloc_fail_from(0);
  rc = lp_engine_yield(&m->fx->e, m->th[j], key, m->now, &u);
  lp_test_alloc_reset();
  assert_int_equal(u, 0); /* no user values here */
  assert_true(rc == 0 || (fail && rc == LP_ENOMEM));
  m_close(m, fr);
  fr->mark = m->now;
  if (stale >= 0) {
    m_unpark(m, &m->pk[stale]);
    unpark_at(m, stale);
  }
  if (rc == 0) {
    fr->key = key;
    m->pk[m->npk++] = *fr;
  }
  m->depth[j]--;
  after(m, -1);
}

static void op_resume(model_t *m, int j, int i, int fail) {
  rframe_t fr = m->pk[i];
  int rc;
  before(m);
  if (fail)
    lp_test_alloc_fail_from(0);
  rc = lp_engine_resume(&m->fx->e, m->th[j], fr.key, m->fn[fr.fn],
                        m->ident++, 0, m->now);
  lp_test_alloc_reset();
  assert_true(rc == 1 || (fail && rc == LP_ENOMEM));
  if (rc == 1) {
    m_unpark(m, &fr);
    fr.stretch = m->now;
    fr.key = 0;
    unpark_at(m, i);
    m->st[j][m->depth[j]++] = fr;
  }
  after(m, -1);
}

/* A frame seen first at a resume, at line l (0: none), without a hit. */
static void op_adopt(model_t *m, int j, int fn, int32_t l) {
  rframe_t fr = {fn, -1, 0, l, m->now, m->now, 0};
  before(m);
  assert_int_equal(lp_engine_resume(&m->fx->e, m->th[j], m->next_key += 64,
                                    m->fn[fn], m->ident++, l, m->now),
                   0);
  m->st[j][m->depth[j]++] = fr;
  after(m, -1);
}

static void op_drop(model_t *m, int i) {
  uintptr_t u = 0xbad;
  before(m);
  assert_int_equal(lp_engine_drop(&m->fx->e, m->pk[i].key, m->now, &u), 1);
  assert_int_equal(u, 0);
  m_unpark(m, &m->pk[i]);
  unpark_at(m, i);
  after(m, -1);
}

static void op_detach(model_t *m) {
  int j;
  before(m);
  lp_engine_detach(&m->fx->e, m->now, NULL);
  for (j = 0; j < NTH; j++)
    while (m->depth[j] > 0)
      m_close(m, &m->st[j][--m->depth[j]]);
  after(m, -1);
}

static void op_settle(model_t *m) {
  int i, j;
  before(m);
  lp_engine_settle(&m->fx->e, m->now);
  for (j = 0; j < NTH; j++) {
    for (i = 0; i < m->depth[j]; i++) {
      rframe_t *fr = &m->st[j][i];
      m_close(m, fr);
      fr->mark = m->now;
    }
  }
  for (i = 0; i < m->npk; i++)
    m_unpark(m, &m->pk[i]);
  for (i = 0; i < m->ntk; i++)
    if (m->tk[i].rec != NULL && (m->pre[i][0] || m->pre[i][1]))
      seen(&m->tk[i], m->now);
  after(m, -1);
  check_lines(m);
  /* Everything is accounted up to now. */
  for (i = 0; i < m->ntk; i++) {
    if (m->tk[i].rec != NULL) {
      assert_int_equal(m->tk[i].rec->mark, m->now);
      assert_int_equal(m->tk[i].rec->time, m->tk[i].time);
      assert_int_equal(m->tk[i].rec->await, m->tk[i].await);
    }
  }
}

/* A new task seen now; its coroutine starts on thread j (on top of the
 * frames there: an eager first step) and is attributed to it. */
static int op_new_task(model_t *m, int j) {
  rtask_t *x = &m->tk[m->ntk];
  memset(x, 0, sizeof(*x));
  assert_int_equal(
      lp_tasks_new(&m->fx->e.tasks, "R", "main", m->now, &x->rec), 0);
  x->id = x->rec->id;
  x->obj = 1;
  x->mark = x->first = x->last = m->now;
  m->ntk++;
  op_start(m, j, rnd(2) ? 2 : 3);
  op_set(m, j, m->ntk - 1);
  return m->ntk - 1;
}

/* Task x's object dies. */
static void op_kill(model_t *m, int x) {
  before(m);
  assert_int_equal(lp_tasks_unref(&m->fx->e.tasks, m->tk[x].rec), 0);
  m->tk[x].obj = 0;
  after(m, -1);
}

static int nlive(model_t *m) {
  int i, n = 0;
  for (i = 0; i < m->ntk; i++)
    n += m->tk[i].rec != NULL;
  return n;
}

static int o_parked(model_t *m) {
  int i;
  for (i = 0; i < m->npk; i++)
    if (m->pk[i].o)
      return i;
  return -1;
}

static void step(model_t *m) {
  int j = (int)rnd(NTH), i, x;
  rframe_t *top = top_of(m, j);
  uint32_t op = rnd(100);
  if (op < 20) {
    if (top != NULL)
      op_line(m, j, 1 + (int32_t)rnd(20));
  } else if (op < 34) {
    uint32_t how;
    if (m->depth[j] == MAXD)
      return;
    op_start(m, j, (int)rnd(NFN));
    how = rnd(8);
    if (how < 3 && caller_task(m, j) >= 0)
      op_set(m, j, caller_task(m, j)); /* a call inherits its task */
    else if (how < 5)
      op_set(m, j, any_task(m));
    else if (how < 6)
      op_set(m, j, -1);
  } else if (op < 38) {
    if (top != NULL && top->task < 0)
      op_set(m, j, rnd(2) ? caller_task(m, j) : any_task(m));
  } else if (op < 48) {
    if (top != NULL && !top->o)
      op_return(m, j, (int)rnd(2));
  } else if (op < 58) {
    uintptr_t key;
    int fail = 0;
    if (top == NULL || m->npk == MAXP)
      return;
    if (rnd(8) == 0 && (i = any_parked(m)) >= 0) {
      key = m->pk[i].key; /* its owner died unseen */
    } else {
      key = m->next_key += 64;
      /* Out of memory: the frame ends. Not O, and not when that retires
       * its task (retiring needs memory too: see lp_tasks_unref). */
      fail = rnd(8) == 0 && !top->o &&
             (top->task < 0 ||
              m->tk[top->task].obj + m->tk[top->task].frames >= 2);
    }
    op_yield(m, j, key, fail);
  } else if (op < 70) {
    if (m->npk > 0 && m->depth[j] < MAXD)
      op_resume(m, j, (int)rnd((uint32_t)m->npk), rnd(8) == 0);
  } else if (op < 73) {
    if (m->depth[j] == MAXD)
      return;
    op_adopt(m, j, (int)rnd(NFN), (int32_t)rnd(21));
    if (rnd(2))
      op_set(m, j, rnd(2) ? caller_task(m, j) : any_task(m));
  } else if (op < 78) {
    if ((i = any_parked(m)) >= 0)
      op_drop(m, i);
  } else if (op < 81) {
    if (m->ntk < MAXT && nlive(m) < MAXLIVE && m->depth[j] < MAXD)
      op_new_task(m, j);
  } else if (op < 84) {
    x = any_task(m);
    if (x > 0 && m->tk[x].obj)
      op_kill(m, x);
  } else if (op < 85) {
    if (o_parked(m) >= 0)
      op_detach(m);
  }
}

static void run_random(fixture_t *fx, uint64_t seed, int steps,
                       int with_settles, rsnap_t *snap) {
  static model_t model;
  model_t *m = &model;
  int s, i, j;

  fixture_reset(fx); /* fewer than LP_TASKS_KEEP tasks: all kept whole */
  memset(m, 0, sizeof(*m));
  m->fx = fx;
  m->fn[0] = fx->f;
  m->fn[1] = fx->g;
  m->fn[2] = fx->c;
  m->fn[3] = fx->d;
  m->th[0] = fx->th;
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &m->th[1]), 0);
  m->next_key = 0x7f2000000000u;
  m->ident = 1;
  m->now = 1000 * seed;
  rng = 0x9E3779B97F4A7C15ull ^ (seed * 0x100000001B3ull);
  rng_settle = 0xD1B54A32D192ED03ull ^ seed;

  /* O: task 0's coroutine, on thread 1. */
  op_new_task(m, 0);
  m->st[0][0].o = 1;

  for (s = 0; s < steps; s++) {
    m->now += rnd(10);
    step(m);
    if (with_settles && rnd_from(&rng_settle, 100) < 6)
      op_settle(m);
  }

  /* The end: parked frames other than O are dropped; O resumes if parked;
   * everything running returns (or, for odd seeds, is detached); the task
   * objects die. */
  m->now += 1;
  while ((i = any_parked(m)) >= 0)
    op_drop(m, i);
  if ((i = o_parked(m)) >= 0) {
    j = m->depth[0] < MAXD ? 0 : 1;
    op_resume(m, j, i, 0);
  }
  m->now += 1 + rnd(5);
  if (seed % 2) {
    op_detach(m);
  } else {
    for (j = 0; j < NTH; j++)
      while (m->depth[j] > 0)
        op_return(m, j, 0);
  }
  assert_int_equal(m->npk, 0);
  for (i = m->ntk - 1; i >= 0; i--)
    if (m->tk[i].rec != NULL && m->tk[i].obj)
      op_kill(m, i);
  for (i = 0; i < m->ntk; i++)
    assert_null(m->tk[i].rec); /* all retired, all checked */
  assert_int_equal(fx->e.tasks.nlive, 0);
  assert_int_equal(fx->e.nparked, 0);
  /* O ran or waited from the first event to the last: exactly its span. */
  assert_int_equal(m->tk[0].time + m->tk[0].await,
                   m->tk[0].last - m->tk[0].first);
  assert_int_equal(m->tk[0].last, m->now);
  check_lines(m);

  snap->ntk = m->ntk;
  for (i = 0; i < m->ntk; i++) {
    snap->tk[i][0] = m->tk[i].time;
    snap->tk[i][1] = m->tk[i].await;
    snap->tk[i][2] = m->tk[i].first;
    snap->tk[i][3] = m->tk[i].last;
  }
  memcpy(snap->ln, m->ln, sizeof(snap->ln));
}

static void test_random_sequential(void **state) {
  fixture_t *fx = *state;
  static rsnap_t snap;
  uint64_t seed;
  for (seed = 1; seed <= 24; seed++)
    run_random(fx, seed, 3000, 0, &snap);
}

static void test_random_with_settles(void **state) {
  fixture_t *fx = *state;
  static rsnap_t with, without;
  uint64_t seed;
  int i;
  for (seed = 101; seed <= 124; seed++) {
    run_random(fx, seed, 3000, 1, &with);
    run_random(fx, seed, 3000, 0, &without);
    /* The same events: the same tasks, totals and lines. */
    assert_int_equal(with.ntk, without.ntk);
    for (i = 0; i < with.ntk; i++)
      assert_memory_equal(with.tk[i], without.tk[i], sizeof(with.tk[i]));
    assert_memory_equal(with.ln, without.ln, sizeof(with.ln));
  }
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_set_task),
      T(test_nested_same_task),
      T(test_coroutine_chain),
      T(test_throw_into_nested_awaits),
      T(test_generator_parked_while_task_runs),
      T(test_two_tasks_interleaved),
      T(test_other_task_called_inside),
      T(test_eager_task_first_step),
      T(test_generator_resumed_by_other_task),
      T(test_two_threads_one_task),
      T(test_no_task),
      T(test_frame_end_releases),
      T(test_failed_yield_releases),
      T(test_failed_resume_keeps_parked),
      T(test_retired_after_last_frame),
      T(test_adopted_frame),
      T(test_settle),
      T(test_settle_last_seen),
      T(test_settle_changes_nothing),
      T(test_generator_resumed_outside_its_task),
      T(test_outer_resumed_nested),
      T(test_random_sequential),
      T(test_random_with_settles),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
