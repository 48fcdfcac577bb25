/* test_engine_tasks.c - lp_engine: attribution of time to event-loop tasks.
 * A task's time is the active time of its outermost profiled frames, its
 * await the time those frames were parked; nested frames of the same task
 * add nothing; every frame holds a reference to its task until it ends.
 * Driven by synthetic event sequences with hand-picked timestamps (every
 * expected number is worked out by hand in the comments), and by seeded
 * random sequences checked against an independent model. */
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

/* Event shorthands: each must succeed. */
#define START(th, func, ident, t)                                            \
  assert_int_equal(lp_engine_start(&fx->e, (th), (func), (ident), (t)), 0)
#define SET(th, task, t) lp_engine_set_task(&fx->e, (th), (task), (t))
#define LINE(th, l, t)                                                       \
  assert_int_equal(lp_engine_line(lp_engine_top(th), (l), (t)), 0)
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

/* For tasks whose frames ran and were parked strictly one after another:
 * the time counted cannot exceed the span the task was seen over. */
#define ASSERT_WITHIN_SPAN(task)                                             \
  assert_true((task)->time + (task)->await <= (task)->last - (task)->first)

#define ASSERT_LINE(func, l, h, tm, aw)                                      \
  do {                                                                       \
    const lp_line_t *ln_ = lp_func_line((func), (l));                        \
    assert_non_null(ln_);                                                    \
    assert_int_equal(ln_->hits, (h));                                        \
    assert_int_equal(ln_->time, (tm));                                       \
    assert_int_equal(ln_->await, (aw));                                      \
  } while (0)

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
  /* On an empty stack: nothing to attribute. */
  SET(th, T, 0);
  ASSERT_TASK(T, 0, 0, 0, 0, 1);
  START(th, fx->f, 1, 0);
  fr = lp_engine_top(th);
  assert_null(fr->task); /* no task until set */
  SET(th, T, 0);
  assert_ptr_equal(fr->task, T);
  assert_int_equal(fr->outer, 1); /* nothing below */
  assert_int_equal(T->refs, 2);   /* the object + this frame */
  /* A second attribution of the same frame: one frame, one reference. */
  SET(th, T, 3);
  assert_int_equal(T->refs, 2);
  LINE(th, 1, 0);
  RETURN(th, 50); /* 0..50 */
  ASSERT_TASK(T, 50, 0, 0, 50, 1);
  /* Set some time after the start: counted from the set. */
  START(th, fx->g, 2, 60);
  LINE(th, 1, 60);
  SET(th, T, 67);
  assert_int_equal(T->last, 67);
  RETURN(th, 80); /* 67..80 = 13 */
  ASSERT_TASK(T, 63, 0, 0, 80, 1);
  ASSERT_LINE(fx->g, 1, 1, 20, 0); /* the line: 60..80 regardless */
  /* NULL: the frame has no task. */
  START(th, fx->g, 3, 90);
  SET(th, NULL, 90);
  assert_null(lp_engine_top(th)->task);
  assert_int_equal(lp_engine_top(th)->outer, 0);
  RETURN(th, 99);
  ASSERT_TASK(T, 63, 0, 0, 80, 1);
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
  assert_int_equal(lp_engine_top(th)->outer, 0);
  assert_int_equal(T->refs, 3);
  LINE(th, 1, 10);
  RETURN(th, 30);
  assert_int_equal(T->refs, 2);
  assert_int_equal(T->time, 0); /* the outer stretch is still open */
  RETURN(th, 50);
  ASSERT_TASK(T, 50, 0, 0, 50, 1);
  ASSERT_LINE(fx->f, 1, 1, 50, 0);
  ASSERT_LINE(fx->g, 1, 1, 20, 0);
  /* Three deep, by exceptions: f 100..130, g 110..125, f 112..120; only
   * the outermost counts: +30. */
  START(th, fx->f, 3, 100);
  SET(th, T, 100);
  START(th, fx->g, 4, 110);
  SET(th, T, 110);
  START(th, fx->f, 5, 112);
  SET(th, T, 112);
  assert_int_equal(lp_engine_top(th)->outer, 0);
  assert_int_equal(T->refs, 4);
  UNWIND(th, 120);
  UNWIND(th, 125);
  UNWIND(th, 130);
  ASSERT_TASK(T, 80, 0, 0, 130, 1);
  ASSERT_WITHIN_SPAN(T);
}

static void test_coroutine_chain(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0), *U;
  /* A (c, task T) awaits B (d, task T). B parks at 20, A parks at 20; A
   * resumes at 100, then B; B returns at 110, A at 120.
   *   T time: A 0..20 + 100..120 = 40 (B's 5..20 and 100..110 inside A)
   *   T await: A parked 20..100 = 80
   *   c line 1: time 20 + 20 = 40, await 80
   *   d line 2: time 15 + 10 = 25, await 80 */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th, fx->d, 2, 5);
  SET(th, T, 5);
  LINE(th, 2, 5);
  YIELD(th, GEN2, 20);
  YIELD(th, GEN1, 20);
  assert_int_equal(th->depth, 0);
  ASSERT_TASK(T, 20, 0, 0, 20, 3); /* both parked frames hold it */
  RESUME(th, GEN1, fx->c, 3, 1, 100, 1);
  assert_int_equal(lp_engine_top(th)->outer, 1);
  ASSERT_TASK(T, 20, 80, 0, 100, 3);
  RESUME(th, GEN2, fx->d, 4, 2, 100, 1);
  assert_int_equal(lp_engine_top(th)->outer, 0);
  RETURN(th, 110);
  RETURN(th, 120);
  ASSERT_TASK(T, 40, 80, 0, 120, 1);
  ASSERT_LINE(fx->c, 1, 1, 40, 80);
  ASSERT_LINE(fx->d, 2, 1, 25, 80);
  ASSERT_WITHIN_SPAN(T);

  /* The same chain, with the events a little apart (task U, first seen at
   * 200): B (line 4) parks at 220, A (line 3) at 222; A resumes at 300, B
   * at 303; B returns at 310, A at 320.
   *   U time: A 200..222 + 300..320 = 42; await: A 222..300 = 78
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
  RESUME(th, GEN1, fx->c, 7, 3, 300, 1);
  RESUME(th, GEN2, fx->d, 8, 4, 303, 1);
  RETURN(th, 310);
  RETURN(th, 320);
  ASSERT_TASK(U, 42, 78, 200, 320, 1);
  ASSERT_LINE(fx->c, 3, 1, 22 + 20, 78);
  ASSERT_LINE(fx->d, 4, 1, 15 + 7, 83);
  ASSERT_WITHIN_SPAN(U);
  ASSERT_TASK(T, 40, 80, 0, 120, 1); /* T untouched */
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
  RETURN(th, 40);
  RESUME(th, GEN2, fx->d, 4, 1, 50, 1);
  RETURN(th, 70);
  ASSERT_TASK(T1, 20, 20, 0, 40, 1);
  ASSERT_TASK(T2, 35, 25, 10, 70, 1);
  /* Each ran and waited without overlap: exactly its span. */
  assert_int_equal(T1->time + T1->await, T1->last - T1->first);
  assert_int_equal(T2->time + T2->await, T2->last - T2->first);
}

static void test_other_task_called_inside(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T1 = new_task(fx, "T1", 0), *T2 = new_task(fx, "T2", 0);
  /* A (f, T1) runs 0..30 and calls g, attributed to T2, from 10 to 20: g
   * is T2's outermost frame (the frame below is T1's). T1: 30 (g's time
   * included, as callee time is); T2: 10. */
  START(th, fx->f, 1, 0);
  SET(th, T1, 0);
  START(th, fx->g, 2, 10);
  SET(th, T2, 10);
  assert_int_equal(lp_engine_top(th)->outer, 1);
  /* g calls f, attributed to T1 again, from 12 to 18: the frame below is
   * T2's, so this f is an outermost frame of T1 too, and its 6 count for
   * T1 once more (the two T1 frames are not one nest: not sequential). */
  START(th, fx->f, 3, 12);
  SET(th, T1, 12);
  assert_int_equal(lp_engine_top(th)->outer, 1);
  RETURN(th, 18);
  RETURN(th, 20);
  RETURN(th, 30);
  ASSERT_TASK(T1, 30 + 6, 0, 0, 30, 1);
  ASSERT_TASK(T2, 10, 0, 0, 20, 1);
}

static void test_no_task(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  lp_task_t *T = new_task(fx, "T", 0);
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* Frames never attributed, or attributed to NULL, running or parked,
   * on any thread: T is untouched. */
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
  ASSERT_LINE(fx->d, 1, 1, 5, 40); /* the lines are counted as ever */

  /* A task frame called from a frame with no task is the task's
   * outermost: c (T) 110..120, parked 120..150, 150..160. */
  START(th, fx->f, 4, 100);
  START(th, fx->c, 5, 110);
  SET(th, T, 110);
  assert_int_equal(lp_engine_top(th)->outer, 1);
  LINE(th, 1, 110);
  YIELD(th, GEN1, 120);
  RETURN(th, 130); /* f */
  RESUME(th, GEN1, fx->c, 6, 1, 150, 1);
  RETURN(th, 160);
  ASSERT_TASK(T, 20, 30, 0, 160, 1);

  /* A frame with no task inside a task frame: callee time of the task's
   * frame, as any callee. c (T) 200..230: +30. */
  START(th, fx->c, 7, 200);
  SET(th, T, 200);
  START(th, fx->f, 8, 210);
  RETURN(th, 220);
  RETURN(th, 230);
  ASSERT_TASK(T, 50, 30, 0, 230, 1);
  ASSERT_WITHIN_SPAN(T);
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
  DROP(GEN1, 45);
  ASSERT_TASK(T, 30, 15, 0, 45, 1);
  /* Detach: f (T) from 50 calls g (T) at 55, which calls c (T) at 56; c
   * parks at 58 (nested: no await for T). Detached at 60: f and g end
   * (T +10), the parked c keeps its reference until dropped at 70. */
  START(th, fx->f, 4, 50);
  SET(th, T, 50);
  START(th, fx->g, 5, 55);
  SET(th, T, 55);
  START(th, fx->c, 6, 56);
  SET(th, T, 56);
  YIELD(th, GEN2, 58);
  assert_int_equal(T->refs, 4);
  lp_engine_detach(&fx->e, 60, NULL);
  assert_int_equal(th->depth, 0);
  assert_int_equal(T->refs, 2);
  ASSERT_TASK(T, 40, 15, 0, 60, 2);
  DROP(GEN2, 70);
  ASSERT_TASK(T, 40, 15, 0, 60, 1);
  /* A yield over a stale key ends the old frame: c (T) runs 80..90, parks
   * under GEN1; d (T) runs 100..105 and parks under GEN1 too: c's
   * suspension ends at 105 (await +15) and its reference goes. d is
   * dropped at 125 (await +20). Time: +10 +5. */
  START(th, fx->c, 7, 80);
  SET(th, T, 80);
  YIELD(th, GEN1, 90);
  START(th, fx->d, 8, 100);
  SET(th, T, 100);
  assert_int_equal(T->refs, 3);
  YIELD(th, GEN1, 105);
  assert_int_equal(fx->e.nparked, 1);
  ASSERT_TASK(T, 55, 30, 0, 105, 2);
  DROP(GEN1, 125);
  ASSERT_TASK(T, 55, 50, 0, 125, 1);
  ASSERT_WITHIN_SPAN(T);
}

static void test_failed_yield_releases(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
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
  /* The object dies: no frame left, T is retired whole at once. */
  assert_int_equal(lp_tasks_unref(&fx->e.tasks, T), 0);
  f = find_task(fx, 1);
  assert_non_null(f.found);
  assert_int_equal(f.live, 0);
  assert_int_equal(f.in_live_part, 0);
  ASSERT_TASK(f.found, 10, 0, 0, 10, 0);
  assert_int_equal(f.nfolds, 0);
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
   * 150..155. */
  RESUME(th, GEN1, fx->c, 1, 4, 100, 0);
  SET(th, T, 100);
  assert_int_equal(lp_engine_top(th)->outer, 1);
  assert_int_equal(T->refs, 2);
  YIELD(th, GEN1, 130);
  RESUME(th, GEN1, fx->c, 2, 4, 150, 1);
  RETURN(th, 155);
  ASSERT_TASK(T, 35, 20, 90, 155, 1);
  ASSERT_LINE(fx->c, 4, 0, 35, 20);
  ASSERT_WITHIN_SPAN(T);
}

static void test_settle(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th, *th2;
  lp_task_t *T = new_task(fx, "T", 0), *U = new_task(fx, "U", 0);
  assert_int_equal(lp_engine_thread_new(&fx->e, 2, &th2), 0);
  /* Thread 1: A (c, T) runs from 0; B (g, T) nested from 20 to 45; A
   * returns at 50. Thread 2: C (d, U) runs 0..10, parks, resumes at 60,
   * returns at 70. Settled at 40 (twice), and at 100 when idle.
   *   at 40: T time 0..40 = 40 (B nested: nothing); U time 10, await
   *          10..40 = 30
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
  assert_int_equal(T->time, 40);
  assert_int_equal(T->await, 0);
  assert_int_equal(U->time, 10);
  assert_int_equal(U->await, 30);
  lp_engine_settle(&fx->e, 40);
  assert_int_equal(T->time, 40);
  assert_int_equal(U->time, 10);
  assert_int_equal(U->await, 30);
  RETURN(th, 45);
  RETURN(th, 50);
  RESUME(th2, GEN1, fx->d, 4, 1, 60, 1);
  RETURN(th2, 70);
  ASSERT_TASK(T, 50, 0, 0, 50, 1);
  ASSERT_TASK(U, 20, 50, 0, 70, 1);
  lp_engine_settle(&fx->e, 100);
  ASSERT_TASK(T, 50, 0, 0, 50, 1);
  ASSERT_TASK(U, 20, 50, 0, 70, 1);
  ASSERT_LINE(fx->c, 1, 1, 50, 0);
  ASSERT_LINE(fx->d, 1, 1, 20, 50);
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
  ASSERT_WITHIN_SPAN(U);
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
}

static void test_generator_resumed_outside_its_task(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
  /* A (f, T) runs 0..50 and starts a generator c at 5 (T, nested), which
   * parks at 8. A returns. At 200 plain code (no task frame below)
   * resumes the generator: it is now T's outermost frame on the thread,
   * runs 200..210 (T +10) and parks as such until dropped at 300 (T await
   * +90). Its nested stretch 5..8 was inside A's and counts no more. */
  START(th, fx->f, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  START(th, fx->c, 2, 5);
  SET(th, T, 5);
  assert_int_equal(lp_engine_top(th)->outer, 0);
  LINE(th, 1, 5);
  YIELD(th, GEN1, 8);
  RETURN(th, 50);
  ASSERT_TASK(T, 50, 0, 0, 50, 2);
  RESUME(th, GEN1, fx->c, 3, 1, 200, 1);
  assert_int_equal(lp_engine_top(th)->outer, 1);
  LINE(th, 2, 205);
  YIELD(th, GEN1, 210);
  ASSERT_TASK(T, 50 + 10, 0, 0, 210, 2);
  DROP(GEN1, 300);
  ASSERT_TASK(T, 60, 90, 0, 300, 1);
  ASSERT_WITHIN_SPAN(T);
  ASSERT_LINE(fx->c, 1, 1, 3 + 5, 192);
  ASSERT_LINE(fx->c, 2, 1, 5, 90);
}

static void test_outer_resumed_nested(void **state) {
  fixture_t *fx = *state;
  lp_thread_t *th = fx->th;
  lp_task_t *T = new_task(fx, "T", 0);
  /* The other way round: generator c (T) runs 0..10 as T's outermost and
   * parks (await from 10). A (f, T) starts at 20 and resumes it at 30:
   * its suspension as outermost ends (await 10..30 = 20), and it runs
   * nested in A: its second stretch 30..40 and its second suspension
   * 40..100 count nothing for T. A returns at 60: T time 10 + 40. */
  START(th, fx->c, 1, 0);
  SET(th, T, 0);
  LINE(th, 1, 0);
  YIELD(th, GEN1, 10);
  START(th, fx->f, 2, 20);
  SET(th, T, 20);
  assert_int_equal(lp_engine_top(th)->outer, 1);
  RESUME(th, GEN1, fx->c, 3, 1, 30, 1);
  assert_int_equal(lp_engine_top(th)->outer, 0);
  ASSERT_TASK(T, 10, 20, 0, 30, 3);
  YIELD(th, GEN1, 40);
  RETURN(th, 60);
  ASSERT_TASK(T, 50, 20, 0, 60, 2);
  DROP(GEN1, 100);
  assert_int_equal(T->time, 50);
  assert_int_equal(T->await, 20);
  assert_int_equal(T->refs, 1);
}

/* ---- random sequences against a model ---- */

static uint64_t rng;

static uint32_t rnd(uint32_t n) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (uint32_t)((rng * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

typedef struct {
  lp_func_t *func;
  uintptr_t key; /* while parked */
} mframe_t;

enum { MAXF = 64 };

/* One task T whose outermost frame O (coroutine c, used by nothing else)
 * runs, parks with its whole chain and resumes; nested frames of T (d, g)
 * start on top, run lines, return or unwind, park alone as generators
 * ("loose") and are resumed on top of T frames or dropped; plain frames
 * with no task run while the chain is parked. Everything of T happens one
 * thing at a time, so the model is: T time = O's active stretches, T await
 * = O's parked stretches, T refs = 1 + frames of T alive; O's lines get
 * the usual line time and await. with_settles adds lp_engine_settle. */
static void run_random(fixture_t *fx, uint64_t seed, int steps,
                       int with_settles) {
  lp_thread_t *th = fx->th;
  lp_task_t *T;
  mframe_t stack[MAXF], chain[MAXF], loose[MAXF];
  int depth = 0, nchain = 0, nloose = 0, o_parked = 0, step, i;
  uint64_t now = 1000 * seed, t0, m_time = 0, m_await = 0, o_mark, o_park = 0;
  uint64_t lt[21] = {0}, la[21] = {0}, lh[21] = {0}, l_mark = 0, l_park = 0;
  int o_line = 0;
  uintptr_t next_key = 0x7f2000000000u, ident = 1;

  rng = 0x9E3779B97F4A7C15ull ^ (seed * 0x100000001B3ull);
  lp_table_clear(&fx->e.table);
  T = new_task(fx, "R", now);
  t0 = now;
  START(th, fx->c, ident++, now);
  SET(th, T, now);
  assert_int_equal(lp_engine_top(th)->outer, 1);
  stack[depth++] = (mframe_t){fx->c, 0};
  o_mark = now;

  for (step = 0; step < steps; step++) {
    uint32_t op = rnd(100);
    now += rnd(10);
    if (!o_parked) {
      mframe_t *top = &stack[depth - 1];
      if (op < 30) { /* a line in the top frame */
        int32_t l = 1 + (int32_t)rnd(20);
        LINE(th, l, now);
        if (depth == 1) {
          if (o_line)
            lt[o_line] += now - l_mark;
          o_line = l;
          lh[l]++;
          l_mark = now;
        }
      } else if (op < 45 && depth < MAXF) { /* a nested call */
        lp_func_t *fn = rnd(2) ? fx->d : fx->g;
        START(th, fn, ident++, now);
        SET(th, T, now);
        assert_int_equal(lp_engine_top(th)->outer, 0);
        if (rnd(2))
          LINE(th, 1 + (int32_t)rnd(20), now);
        stack[depth++] = (mframe_t){fn, 0};
      } else if (op < 58 && depth > 1) { /* a nested frame ends */
        if (rnd(2))
          RETURN(th, now);
        else
          UNWIND(th, now);
        depth--;
      } else if (op < 66 && depth > 1 && nloose < MAXF) { /* it parks */
        top->key = next_key += 64;
        YIELD(th, top->key, now);
        loose[nloose++] = *top;
        depth--;
      } else if (op < 74 && nloose > 0 && depth < MAXF) { /* one resumes */
        i = (int)rnd((uint32_t)nloose);
        RESUME(th, loose[i].key, loose[i].func, ident++, 0, now, 1);
        assert_int_equal(lp_engine_top(th)->outer, 0);
        stack[depth++] = loose[i];
        loose[i] = loose[--nloose];
      } else if (op < 78 && nloose > 0) { /* one is destroyed */
        i = (int)rnd((uint32_t)nloose);
        DROP(loose[i].key, now);
        loose[i] = loose[--nloose];
      } else if (op < 86) { /* the whole chain parks, top first */
        for (i = depth - 1; i >= 0; i--) {
          if (i < depth - 1)
            now += rnd(3);
          stack[i].key = next_key += 64;
          YIELD(th, stack[i].key, now);
        }
        memcpy(chain, stack, (size_t)depth * sizeof(*chain));
        nchain = depth;
        depth = 0;
        o_parked = 1;
        m_time += now - o_mark;
        o_park = now;
        if (o_line) {
          lt[o_line] += now - l_mark;
          l_park = now;
        }
      } else if (op < 92 && with_settles) {
        lp_engine_settle(&fx->e, now);
        m_time += now - o_mark;
        o_mark = now;
        if (o_line) {
          lt[o_line] += now - l_mark;
          l_mark = now;
        }
      }
    } else {
      if (op < 15 && with_settles) {
        lp_engine_settle(&fx->e, now);
        m_await += now - o_park;
        o_park = now;
        if (o_line) {
          la[o_line] += now - l_park;
          l_park = now;
        }
      } else if (op < 40) { /* unrelated code, no task */
        START(th, fx->f, ident++, now);
        LINE(th, 1, now);
        now += rnd(5);
        RETURN(th, now);
      } else if (op < 45 && nloose > 0) {
        i = (int)rnd((uint32_t)nloose);
        DROP(loose[i].key, now);
        loose[i] = loose[--nloose];
      } else { /* the chain resumes, bottom first */
        RESUME(th, chain[0].key, fx->c, ident++, 0, now, 1);
        assert_int_equal(lp_engine_top(th)->outer, 1);
        m_await += now - o_park;
        o_mark = now;
        if (o_line) {
          la[o_line] += now - l_park;
          l_mark = now;
        }
        for (i = 1; i < nchain; i++) {
          now += rnd(3);
          RESUME(th, chain[i].key, chain[i].func, ident++, 0, now, 1);
          assert_int_equal(lp_engine_top(th)->outer, 0);
        }
        memcpy(stack, chain, (size_t)nchain * sizeof(*stack));
        depth = nchain;
        nchain = 0;
        o_parked = 0;
      }
    }
    assert_int_equal(T->time, m_time);
    assert_int_equal(T->await, m_await);
    assert_int_equal(T->refs, 1 + depth + nchain + nloose);
    assert_int_equal(T->first, t0);
    if (!with_settles)
      ASSERT_WITHIN_SPAN(T);
  }

  /* The end: the chain resumes if parked, loose generators are dropped,
   * nested frames return, and O returns (or, for odd seeds, everything
   * running is detached). */
  if (o_parked) {
    now += 1;
    RESUME(th, chain[0].key, fx->c, ident++, 0, now, 1);
    m_await += now - o_park;
    o_mark = now;
    if (o_line) {
      la[o_line] += now - l_park;
      l_mark = now;
    }
    for (i = 1; i < nchain; i++)
      RESUME(th, chain[i].key, chain[i].func, ident++, 0, now, 1);
    depth = nchain;
  }
  now += 1;
  while (nloose > 0) {
    DROP(loose[nloose - 1].key, now);
    nloose--;
  }
  now += 1 + rnd(5);
  if (seed % 2) {
    lp_engine_detach(&fx->e, now, NULL);
  } else {
    for (; depth > 0; depth--)
      RETURN(th, now);
  }
  assert_int_equal(th->depth, 0);
  m_time += now - o_mark;
  if (o_line)
    lt[o_line] += now - l_mark;
  ASSERT_TASK(T, m_time, m_await, t0, now, 1);
  /* O was either running or parked from t0 to now. */
  assert_int_equal(T->time + T->await, now - t0);
  for (i = 1; i <= 20; i++)
    ASSERT_LINE(fx->c, i, lh[i], lt[i], la[i]);
  assert_int_equal(fx->e.nparked, 0);
}

static void test_random_sequential(void **state) {
  fixture_t *fx = *state;
  uint64_t seed;
  for (seed = 1; seed <= 24; seed++)
    run_random(fx, seed, 3000, 0);
}

static void test_random_with_settles(void **state) {
  fixture_t *fx = *state;
  uint64_t seed;
  for (seed = 101; seed <= 124; seed++)
    run_random(fx, seed, 3000, 1);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_set_task),
      T(test_nested_same_task),
      T(test_coroutine_chain),
      T(test_two_tasks_interleaved),
      T(test_other_task_called_inside),
      T(test_no_task),
      T(test_frame_end_releases),
      T(test_failed_yield_releases),
      T(test_retired_after_last_frame),
      T(test_adopted_frame),
      T(test_settle),
      T(test_settle_last_seen),
      T(test_generator_resumed_outside_its_task),
      T(test_outer_resumed_nested),
      T(test_random_sequential),
      T(test_random_with_settles),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
