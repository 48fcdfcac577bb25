/* test_snapshot.c - lp_snapshot: a settled copy of an engine taken while
 * it records. Single-threaded tests use the fake clock, so every settled
 * counter is worked out by hand; the threaded tests check what a torn copy
 * would break (lines hit together in one change always show equal hits),
 * the LP_EBUSY deadline, and that the writer waits only while a copy is
 * made. Every engine event is wrapped in lp_sync_write_begin/end as the
 * binding does. */
#include "lp_test.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "lp_engine.h"
#include "lp_file.h"
#include "lp_snapshot.h"

#define KF ((uintptr_t)0x7f0000010000u)
#define KG ((uintptr_t)0x7f0000020000u)
#define KC ((uintptr_t)0x7f0000030000u)
#define GEN1 ((uintptr_t)0x7f1000000040u)

typedef struct {
  lp_engine_t e;
  uint64_t now;        /* the fake clock */
  lp_thread_t *th1;    /* id 1 */
  lp_func_t *f, *g, *c; /* f, g: functions; c: a coroutine; lines 1..20 */
} fixture_t;

static int setup(void **state) {
  fixture_t *fx = calloc(1, sizeof(*fx));
  lp_table_t *t;
  if (fx == NULL || lp_engine_init(&fx->e, lp_test_clock, &fx->now) != 0)
    return -1;
  t = &fx->e.table;
  if (lp_table_add(t, KF, "t.py", "f", 1, 1, 20, LP_KIND_FUNCTION, &fx->f) ||
      lp_table_add(t, KG, "t.py", "g", 5, 5, 20, LP_KIND_FUNCTION, &fx->g) ||
      lp_table_add(t, KC, "u.py", "c", 1, 1, 20, LP_KIND_COROUTINE, &fx->c) ||
      lp_engine_thread_new(&fx->e, 1, &fx->th1))
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

/* One engine change, between write_begin and write_end as in the binding. */
#define W(stmt)                                                              \
  do {                                                                       \
    uint64_t outer_ = lp_sync_write_begin(&fx->e.sync);                           \
    stmt;                                                                    \
    lp_sync_write_end(&fx->e.sync, outer_);                                  \
  } while (0)

#define START(th, func, ident, t)                                            \
  assert_int_equal(lp_engine_start(&fx->e, (th), (func), (ident), (t)), 0)
#define LINE(th, l, t)                                                       \
  assert_int_equal(lp_engine_line(&fx->e, lp_engine_top(th), (l), (t)), 0)
#define YIELD(th, key, t)                                                    \
  do {                                                                       \
    uintptr_t u_ = 0xbad;                                                    \
    assert_int_equal(lp_engine_yield(&fx->e, (th), (key), (t), &u_), 0);     \
  } while (0)

#define ASSERT_LINE(func, l, h, tm, aw, mx)                                  \
  do {                                                                       \
    const lp_line_t *ln_ = lp_func_line((func), (l));                        \
    assert_non_null(ln_);                                                    \
    assert_int_equal(ln_->hits, (h));                                        \
    assert_int_equal(ln_->time, (tm));                                       \
    assert_int_equal(ln_->await, (aw));                                      \
    assert_int_equal(ln_->max, (mx));                                        \
  } while (0)

/* ---- a copy of everything in an engine a snapshot could disturb ---- */

typedef struct {
  uint32_t nfuncs;
  lp_line_t *lines[16];
  uint32_t nlines[16];
  lp_task_t tasks[16];
  uint32_t nlive;
  lp_frame_t stacks[8][16];
  uint32_t depth[8];
  uint32_t nthreads;
  lp_frame_t pool[16];
  uint32_t pool_len, nparked;
  uint64_t seq;
  int pause;
} digest_t;

static void digest_take(const lp_engine_t *e, digest_t *d) {
  const lp_thread_t *th;
  uint32_t i;
  memset(d, 0, sizeof(*d));
  d->nfuncs = e->table.nfuncs;
  assert_true(d->nfuncs <= 16);
  for (i = 0; i < d->nfuncs; i++) {
    const lp_func_t *f = e->table.funcs[i];
    d->nlines[i] = f->nlines;
    d->lines[i] = malloc(f->nlines * sizeof(lp_line_t));
    assert_non_null(d->lines[i]);
    memcpy(d->lines[i], f->lines, f->nlines * sizeof(lp_line_t));
  }
  d->nlive = e->tasks.nlive;
  assert_true(d->nlive <= 16);
  for (i = 0; i < d->nlive; i++)
    d->tasks[i] = *e->tasks.live[i];
  for (th = e->threads; th != NULL; th = th->next, d->nthreads++) {
    assert_true(d->nthreads < 8 && th->depth <= 16);
    d->depth[d->nthreads] = th->depth;
    memcpy(d->stacks[d->nthreads], th->stack, th->depth * sizeof(lp_frame_t));
  }
  d->pool_len = e->pool_len;
  d->nparked = e->nparked;
  assert_true(d->pool_len <= 16);
  memcpy(d->pool, e->pool, d->pool_len * sizeof(lp_frame_t));
  d->seq = e->sync.seq;
  d->pause = e->sync.pause;
}

static void digest_free(digest_t *d) {
  uint32_t i;
  for (i = 0; i < d->nfuncs; i++)
    free(d->lines[i]);
}

/* Asserts that e is exactly as when d was taken, then frees d. */
static void digest_check(const lp_engine_t *e, digest_t *d) {
  digest_t now;
  uint32_t i;
  digest_take(e, &now);
  assert_int_equal(now.nfuncs, d->nfuncs);
  for (i = 0; i < d->nfuncs; i++) {
    assert_int_equal(now.nlines[i], d->nlines[i]);
    assert_memory_equal(now.lines[i], d->lines[i],
                        d->nlines[i] * sizeof(lp_line_t));
  }
  assert_int_equal(now.nlive, d->nlive);
  assert_memory_equal(now.tasks, d->tasks, sizeof(d->tasks));
  assert_int_equal(now.nthreads, d->nthreads);
  assert_memory_equal(now.depth, d->depth, sizeof(d->depth));
  assert_memory_equal(now.stacks, d->stacks, sizeof(d->stacks));
  assert_int_equal(now.pool_len, d->pool_len);
  assert_int_equal(now.nparked, d->nparked);
  assert_memory_equal(now.pool, d->pool, sizeof(d->pool));
  assert_int_equal(now.seq, d->seq);
  assert_int_equal(now.pause, 0);
  digest_free(&now);
  digest_free(d);
}

static const lp_now_t *find_now(const lp_now_t *now, uint32_t n,
                                uint64_t thread) {
  uint32_t i;
  for (i = 0; i < n; i++)
    if (now[i].thread == thread)
      return &now[i];
  return NULL;
}

/* ---- the scenario most tests share ----
 *
 * th1 (id 1): f starts at 100; line 1 at 100, line 2 at 130, line 1 again
 *   at 150 and still running. At 160 f calls the coroutine c in task 1
 *   ("Task-1", coroutine "c"); c runs line 5 from 160 and suspends there
 *   at 200 (parked under GEN1).
 * th2 (id 0x2222): g starts at 310 in task 2 ("Task-2", coroutine "g"),
 *   line 7 at 320; at 350 it calls f, which has no line yet.
 * th3 (id 3): f started at 380, no line: no running line on th3.
 *
 * Settled at 400:
 *   f:1  hits 2, time 30 + (400 - 150) = 280, max 250 (the open stretch)
 *   f:2  hits 1, time 20, max 20
 *   c:5  hits 1, time 200 - 160 = 40, max 40, await 400 - 200 = 200
 *   g:7  hits 1, time 400 - 320 = 80, max 80
 *   task 1: time 40 (160..200), await 200 (200..400), last 400
 *   task 2: time 90 (310..400), await 0, last 400
 *   now: th1 at f:1 for 250 (no task: f has none), th2 at g:7 for 80 in
 *        task 2 (its innermost frame, f, has no line yet). */
typedef struct {
  lp_thread_t *th2, *th3;
  lp_task_t *t1, *t2;
} scene_t;

static void scene_build(fixture_t *fx, scene_t *sc) {
  lp_thread_t *th1 = fx->th1;
  W(START(th1, fx->f, 0xf1, 100));
  W(LINE(th1, 1, 100));
  W(LINE(th1, 2, 130));
  W(LINE(th1, 1, 150));
  W({
    START(th1, fx->c, 0xc1, 160);
    assert_int_equal(
        lp_tasks_new(&fx->e.tasks, "Task-1", "c", 160, &sc->t1), 0);
    lp_engine_set_task(&fx->e, th1, sc->t1, 160);
  });
  W(LINE(th1, 5, 160));
  W(YIELD(th1, GEN1, 200));
  W(assert_int_equal(lp_engine_thread_new(&fx->e, 0x2222, &sc->th2), 0));
  W({
    START(sc->th2, fx->g, 0xa1, 310);
    assert_int_equal(
        lp_tasks_new(&fx->e.tasks, "Task-2", "g", 310, &sc->t2), 0);
    lp_engine_set_task(&fx->e, sc->th2, sc->t2, 310);
  });
  W(LINE(sc->th2, 7, 320));
  W(START(sc->th2, fx->f, 0xf2, 350));
  W(assert_int_equal(lp_engine_thread_new(&fx->e, 3, &sc->th3), 0));
  W(START(sc->th3, fx->f, 0xf3, 380));
  fx->now = 400;
}

/* The settled counters of the scenario at 400, in a snapshot's table. */
static void scene_check_lines(const lp_table_t *t) {
  uint32_t i;
  int32_t l;
  assert_int_equal(t->nfuncs, 3);
  ASSERT_LINE(t->funcs[0], 1, 2, 280, 0, 250);
  ASSERT_LINE(t->funcs[0], 2, 1, 20, 0, 20);
  ASSERT_LINE(t->funcs[1], 7, 1, 80, 0, 80);
  ASSERT_LINE(t->funcs[2], 5, 1, 40, 200, 40);
  /* Every other line is zero. */
  for (i = 0; i < 3; i++) {
    const lp_func_t *f = t->funcs[i];
    for (l = f->base; l < f->base + (int32_t)f->nlines; l++) {
      const lp_line_t *ln = &f->lines[l - f->base];
      if ((i == 0 && (l == 1 || l == 2)) || (i == 1 && l == 7) ||
          (i == 2 && l == 5))
        continue;
      assert_int_equal(ln->hits + ln->time + ln->await + ln->max, 0);
    }
  }
}

static void scene_check_now(const lp_now_t *now, uint32_t n) {
  const lp_now_t *a, *b;
  assert_int_equal(n, 2);
  assert_non_null(a = find_now(now, n, 1));
  assert_int_equal(a->task, 0);
  assert_int_equal(a->func, 0);
  assert_int_equal(a->lineno, 1);
  assert_int_equal(a->elapsed, 250);
  assert_non_null(b = find_now(now, n, 0x2222));
  assert_int_equal(b->task, 2);
  assert_int_equal(b->func, 1);
  assert_int_equal(b->lineno, 7);
  assert_int_equal(b->elapsed, 80);
  assert_null(find_now(now, n, 3));
}

/* ------------------------------------------------------------------ */

static void test_settled_counters(void **state) {
  fixture_t *fx = *state;
  scene_t sc;
  lp_snapshot_t s;
  digest_t before;
  uint32_t i;
  scene_build(fx, &sc);
  digest_take(&fx->e, &before);
  assert_int_equal(lp_snapshot_take(&fx->e, &s), 0);
  assert_int_equal(s.t, 400);
  assert_int_equal(s.attempts, 1);
  assert_int_equal(s.paused, 0);
  scene_check_lines(&s.table);
  /* The copies keep the functions' identity, not their keys. */
  for (i = 0; i < 3; i++) {
    const lp_func_t *o = fx->e.table.funcs[i], *c = s.table.funcs[i];
    assert_ptr_not_equal(o, c);
    assert_ptr_not_equal(o->lines, c->lines);
    assert_string_equal(c->file, o->file);
    assert_string_equal(c->name, o->name);
    assert_int_equal(c->firstlineno, o->firstlineno);
    assert_int_equal(c->kind, o->kind);
    assert_int_equal(c->base, o->base);
    assert_int_equal(c->nlines, o->nlines);
    assert_int_equal(c->index, i);
    assert_null(c->sync);
  }
  assert_int_equal(s.table.funcs[1]->base, 5);
  assert_int_equal(s.table.funcs[2]->kind, LP_KIND_COROUTINE);
  /* Tasks: both live, settled at 400. */
  assert_int_equal(s.ntasks, 2);
  assert_int_equal(s.tasks[0].id, 1);
  assert_string_equal(s.tasks[0].name, "Task-1");
  assert_string_equal(s.tasks[0].coro, "c");
  assert_int_equal(s.tasks[0].time, 40);
  assert_int_equal(s.tasks[0].await, 200);
  assert_int_equal(s.tasks[0].first, 160);
  assert_int_equal(s.tasks[0].last, 400);
  assert_int_equal(s.tasks[1].id, 2);
  assert_string_equal(s.tasks[1].name, "Task-2");
  assert_string_equal(s.tasks[1].coro, "g");
  assert_int_equal(s.tasks[1].time, 90);
  assert_int_equal(s.tasks[1].await, 0);
  assert_int_equal(s.tasks[1].first, 310);
  assert_int_equal(s.tasks[1].last, 400);
  assert_null(s.tasks[0].next);
  /* Names live in the snapshot, not in the engine. */
  assert_ptr_not_equal(s.tasks[0].name, sc.t1->name);
  scene_check_now(s.now, s.nnow);
  /* The engine is untouched. */
  digest_check(&fx->e, &before);
  /* And settling the engine itself gives the snapshot's numbers. */
  lp_engine_settle(&fx->e, 400);
  for (i = 0; i < 3; i++)
    assert_memory_equal(fx->e.table.funcs[i]->lines, s.table.funcs[i]->lines,
                        s.table.funcs[i]->nlines * sizeof(lp_line_t));
  assert_int_equal(sc.t1->time, 40);
  assert_int_equal(sc.t1->await, 200);
  assert_int_equal(sc.t2->time, 90);
  lp_snapshot_close(&s);
  assert_int_equal(s.table.nfuncs, 0);
  assert_null(s.tasks);
  assert_null(s.now);
  assert_int_equal(s.nnow, 0);
}

/* A snapshot leaves no trace: a second one later counts from the same
 * marks, and events after it are accounted as if it never happened. */
static void test_later_snapshot(void **state) {
  fixture_t *fx = *state;
  scene_t sc;
  lp_snapshot_t s;
  scene_build(fx, &sc);
  assert_int_equal(lp_snapshot_take(&fx->e, &s), 0);
  lp_snapshot_close(&s);
  fx->now = 1000;
  assert_int_equal(lp_snapshot_take(&fx->e, &s), 0);
  assert_int_equal(s.t, 1000);
  /* f:1 running since 150: 30 + 850 = 880, max 850; c:5 parked since 200:
   * await 800; g:7 since 320: 680. */
  ASSERT_LINE(s.table.funcs[0], 1, 2, 880, 0, 850);
  ASSERT_LINE(s.table.funcs[2], 5, 1, 40, 800, 40);
  ASSERT_LINE(s.table.funcs[1], 7, 1, 680, 0, 680);
  assert_int_equal(s.tasks[0].time, 40);
  assert_int_equal(s.tasks[0].await, 800);
  assert_int_equal(s.tasks[1].time, 690);
  assert_int_equal(find_now(s.now, s.nnow, 1)->elapsed, 850);
  lp_snapshot_close(&s);
  /* Events after the snapshots: f:1 ends at 1100 (880 + 100 = 980 in
   * all), c resumes at 1200 (await 1000) and runs line 6. */
  W(LINE(fx->th1, 3, 1100));
  W(assert_int_equal(lp_engine_resume(&fx->e, fx->th1, GEN1, fx->c, 0xc2, 0,
                                      1200),
                     1));
  W(LINE(fx->th1, 6, 1250));
  fx->now = 1300;
  assert_int_equal(lp_snapshot_take(&fx->e, &s), 0);
  ASSERT_LINE(s.table.funcs[0], 1, 2, 980, 0, 950);
  /* f:3 running 1100..1300 with c on top (callee time). */
  ASSERT_LINE(s.table.funcs[0], 3, 1, 200, 0, 200);
  ASSERT_LINE(s.table.funcs[2], 5, 1, 40 + 50, 1000, 50);
  ASSERT_LINE(s.table.funcs[2], 6, 1, 50, 0, 50);
  /* Task 1: active 160..200 and 1200..1300, waiting 200..1200. */
  assert_int_equal(s.tasks[0].time, 140);
  assert_int_equal(s.tasks[0].await, 1000);
  /* th1's innermost frame on a line is now c at 6, in task 1. */
  {
    const lp_now_t *n = find_now(s.now, s.nnow, 1);
    assert_non_null(n);
    assert_int_equal(n->func, 2);
    assert_int_equal(n->lineno, 6);
    assert_int_equal(n->task, 1);
    assert_int_equal(n->elapsed, 50);
  }
  lp_snapshot_close(&s);
}

/* Renamed, kept and folded tasks are copied with their names. */
static void test_task_names(void **state) {
  fixture_t *fx = *state;
  scene_t sc;
  lp_snapshot_t s;
  lp_task_t *t3, *t4;
  const char *old;
  scene_build(fx, &sc);
  fx->e.tasks.keep = 1; /* one retired task kept whole, the rest folded */
  old = sc.t1->name;
  W(assert_int_equal(lp_task_rename(&fx->e.tasks, sc.t1, "renamed"), 0));
  assert_ptr_not_equal(sc.t1->name, old);
  W(assert_int_equal(lp_tasks_new(&fx->e.tasks, "Task-3", "h", 390, &t3), 0));
  W(assert_int_equal(lp_tasks_new(&fx->e.tasks, "Task-4", "h", 395, &t4), 0));
  W(assert_int_equal(lp_tasks_unref(&fx->e.tasks, t3), 0)); /* kept */
  W(assert_int_equal(lp_tasks_unref(&fx->e.tasks, t4), 0)); /* folded */
  assert_int_equal(fx->e.tasks.nlive, 2);
  assert_int_equal(fx->e.tasks.nkept, 1);
  assert_int_equal(fx->e.tasks.nfolds, 1);
  assert_int_equal(lp_snapshot_take(&fx->e, &s), 0);
  assert_int_equal(s.ntasks, 4);
  assert_int_equal(s.tasks[0].id, 1);
  assert_string_equal(s.tasks[0].name, "renamed");
  assert_string_equal(s.tasks[0].coro, "c");
  assert_int_equal(s.tasks[1].id, 2);
  assert_string_equal(s.tasks[1].name, "Task-2");
  assert_int_equal(s.tasks[2].id, 3);
  assert_string_equal(s.tasks[2].name, "Task-3");
  assert_string_equal(s.tasks[2].coro, "h");
  assert_int_equal(s.tasks[2].first, 390);
  assert_int_equal(s.tasks[2].folded, 0);
  assert_int_equal(s.tasks[3].id, 0);
  assert_string_equal(s.tasks[3].name, "h");
  assert_string_equal(s.tasks[3].coro, "h");
  assert_int_equal(s.tasks[3].folded, 1);
  assert_int_equal(s.tasks[3].first, 395);
  lp_snapshot_close(&s);
  /* Renamed again: the next snapshot has the new name. */
  W(assert_int_equal(lp_task_rename(&fx->e.tasks, sc.t2, "again"), 0));
  assert_int_equal(lp_snapshot_take(&fx->e, &s), 0);
  assert_string_equal(s.tasks[0].name, "renamed");
  assert_string_equal(s.tasks[1].name, "again");
  lp_snapshot_close(&s);
}

static void test_encode_round_trip(void **state) {
  fixture_t *fx = *state;
  scene_t sc;
  lp_snapshot_t s;
  lp_meta_t meta = {0};
  lp_buf_t buf = {0};
  lp_profile_t p;
  uint32_t i;
  scene_build(fx, &sc);
  assert_int_equal(lp_snapshot_take(&fx->e, &s), 0);
  assert_int_equal(lp_meta_add(&meta, "k", "v"), 0);
  assert_int_equal(lp_snapshot_encode(&s, &meta, 100, &buf), 0);
  assert_int_equal(lp_file_parse(buf.data, buf.len, &p), 0);
  assert_int_equal(p.has_now, 1);
  assert_int_equal(p.meta.count, 1);
  assert_string_equal(p.meta.keys[0], "k");
  assert_string_equal(p.meta.vals[0], "v");
  /* Functions in the same order, with the settled lines. */
  assert_int_equal(p.table.nfuncs, 3);
  for (i = 0; i < 3; i++) {
    assert_string_equal(p.table.funcs[i]->name, s.table.funcs[i]->name);
    assert_string_equal(p.table.funcs[i]->file, s.table.funcs[i]->file);
    assert_int_equal(p.table.funcs[i]->kind, s.table.funcs[i]->kind);
  }
  scene_check_lines(&p.table);
  /* Tasks, with first and last counted from t0 = 100. */
  assert_int_equal(p.ntasks, 2);
  assert_int_equal(p.tasks[0].id, 1);
  assert_string_equal(p.tasks[0].name, "Task-1");
  assert_string_equal(p.tasks[0].coro, "c");
  assert_int_equal(p.tasks[0].time, 40);
  assert_int_equal(p.tasks[0].await, 200);
  assert_int_equal(p.tasks[0].first, 60);
  assert_int_equal(p.tasks[0].last, 300);
  assert_int_equal(p.tasks[1].id, 2);
  assert_int_equal(p.tasks[1].time, 90);
  assert_int_equal(p.tasks[1].first, 210);
  assert_int_equal(p.tasks[1].last, 300);
  /* NOW: the same entries, in the same order. */
  assert_int_equal(p.nnow, s.nnow);
  for (i = 0; i < s.nnow; i++) {
    assert_int_equal(p.now[i].thread, s.now[i].thread);
    assert_int_equal(p.now[i].task, s.now[i].task);
    assert_int_equal(p.now[i].elapsed, s.now[i].elapsed);
    assert_int_equal(p.now[i].func, s.now[i].func);
    assert_int_equal(p.now[i].lineno, s.now[i].lineno);
  }
  scene_check_now(p.now, p.nnow);
  lp_profile_close(&p);
  lp__free(buf.data);
  /* Without meta. */
  memset(&buf, 0, sizeof(buf));
  assert_int_equal(lp_snapshot_encode(&s, NULL, 0, &buf), 0);
  assert_int_equal(lp_file_parse(buf.data, buf.len, &p), 0);
  assert_int_equal(p.meta.count, 0);
  assert_int_equal(p.tasks[0].first, 160);
  lp_profile_close(&p);
  lp__free(buf.data);
  lp_meta_close(&meta);
  lp_snapshot_close(&s);
}

static void test_empty_engine(void **state) {
  lp_engine_t e;
  uint64_t now = 77;
  lp_snapshot_t s;
  lp_buf_t buf = {0};
  lp_profile_t p;
  lp_thread_t *th;
  (void)state;
  assert_int_equal(lp_engine_init(&e, lp_test_clock, &now), 0);
  assert_int_equal(lp_snapshot_take(&e, &s), 0);
  assert_int_equal(s.t, 77);
  assert_int_equal(s.attempts, 1);
  assert_int_equal(s.table.nfuncs, 0);
  assert_int_equal(s.ntasks, 0);
  assert_null(s.tasks);
  assert_int_equal(s.nnow, 0);
  assert_int_equal(lp_snapshot_encode(&s, NULL, 0, &buf), 0);
  assert_int_equal(lp_file_parse(buf.data, buf.len, &p), 0);
  assert_int_equal(p.has_now, 1);
  assert_int_equal(p.nnow, 0);
  assert_int_equal(p.table.nfuncs, 0);
  assert_int_equal(p.ntasks, 0);
  lp_profile_close(&p);
  lp__free(buf.data);
  lp_snapshot_close(&s);
  /* A thread with nothing running: still no NOW entry. */
  assert_int_equal(lp_engine_thread_new(&e, 9, &th), 0);
  assert_int_equal(lp_snapshot_take(&e, &s), 0);
  assert_int_equal(s.nnow, 0);
  lp_snapshot_close(&s);
  lp_engine_close(&e);
}

/* ---- allocation failures ---- */

static long live_blocks; /* blocks the core holds through lp__realloc */

static void *tracking_realloc(void *ptr, size_t size) {
  void *r = lp_test_realloc(ptr, size);
  if (size == 0) {
    if (ptr != NULL)
      live_blocks--;
  } else if (ptr == NULL && r != NULL) {
    live_blocks++;
  }
  return r;
}

static void test_alloc_failure(void **state) {
  fixture_t *fx = *state;
  scene_t sc;
  lp_snapshot_t s;
  lp_task_t *t3;
  long k, points = 0;
  int rc;
  scene_build(fx, &sc);
  /* A kept task too, so the name arena holds three tasks' names. */
  W(assert_int_equal(lp_tasks_new(&fx->e.tasks, "Task-3", "h", 390, &t3), 0));
  W(assert_int_equal(lp_tasks_unref(&fx->e.tasks, t3), 0));
  for (k = 0;; k++) {
    digest_t before;
    digest_take(&fx->e, &before);
    lp_test_alloc_fail_at(k);
    lp_set_allocator(tracking_realloc);
    live_blocks = 0;
    rc = lp_snapshot_take(&fx->e, &s);
    if (rc == 0) {
      assert_int_equal(lp_test_alloc.failed, 0);
      assert_true(live_blocks > 0);
      lp_snapshot_close(&s);
      assert_int_equal(live_blocks, 0);
      lp_test_alloc_reset();
      digest_check(&fx->e, &before);
      break;
    }
    assert_int_equal(rc, LP_ENOMEM);
    assert_int_equal(lp_test_alloc.failed, 1);
    points++;
    /* Nothing is left in *out and nothing leaked. */
    assert_int_equal(s.table.nfuncs, 0);
    assert_null(s.tasks);
    assert_null(s.names);
    assert_null(s.now);
    assert_int_equal(live_blocks, 0);
    lp_snapshot_close(&s);
    assert_int_equal(live_blocks, 0);
    lp_test_alloc_reset();
    /* The engine is intact, its mutex free and the writer not paused. */
    digest_check(&fx->e, &before);
    W((void)0); /* a change ends without waiting: pause is clear */
    assert_int_equal(fx->e.sync.seq & 1, 0);
  }
  /* At least: the copied table's array, then a record, lines, file and
   * name for each of the three functions. */
  assert_true(points >= 13);
  print_message("snapshot: %ld allocation failure points\n", points);
  /* Everything works afterwards. */
  assert_int_equal(lp_snapshot_take(&fx->e, &s), 0);
  assert_int_equal(s.ntasks, 3);
  assert_int_equal(s.nnow, 2);
  lp_snapshot_close(&s);
  /* Every allocation failing. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_snapshot_take(&fx->e, &s), LP_ENOMEM);
  lp_snapshot_close(&s);
  lp_test_alloc_reset();
}

/* ---- LP_EBUSY and pausing the writer (two threads) ---- */

/* A clock that moves step nanoseconds at every reading. */
typedef struct {
  uint64_t now, step, calls;
} step_clock_t;

static uint64_t step_clock(void *arg) {
  step_clock_t *c = arg;
  __atomic_fetch_add(&c->calls, 1, __ATOMIC_RELAXED);
  return __atomic_fetch_add(&c->now, c->step, __ATOMIC_RELAXED);
}

typedef struct {
  lp_engine_t *e;
  lp_snapshot_t s;
  int rc;
  uint64_t t0, t1; /* real monotonic time around the call */
  int done;
} reader_t;

static void *reader_main(void *arg) {
  reader_t *r = arg;
  r->t0 = lp_clock_monotonic(NULL);
  r->rc = lp_snapshot_take(r->e, &r->s);
  r->t1 = lp_clock_monotonic(NULL);
  __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void busy_scene(lp_engine_t *e, lp_thread_t **th, lp_func_t **f) {
  assert_int_equal(lp_table_add(&e->table, KF, "t.py", "f", 1, 1, 20,
                                LP_KIND_FUNCTION, f),
                   0);
  assert_int_equal(lp_engine_thread_new(e, 1, th), 0);
  assert_int_equal(lp_engine_start(e, *th, *f, 0xf1, 0), 0);
  assert_int_equal(lp_engine_line(e, lp_engine_top(*th), 1, 0), 0);
}

/* The writer stays inside one change: the reader gives up once the
 * engine's clock has moved past LP_SNAPSHOT_DEADLINE_NS. With 100 ms per
 * reading that is the 11th reading after the first: 12 in all. */
static void test_busy_fake_clock(void **state) {
  step_clock_t clk = {1000, 100000000ull, 0};
  lp_engine_t e;
  lp_thread_t *th;
  lp_func_t *f;
  reader_t r;
  pthread_t tid;
  uint64_t outer;
  (void)state;
  assert_int_equal(lp_engine_init(&e, step_clock, &clk), 0);
  busy_scene(&e, &th, &f);
  memset(&r, 0, sizeof(r));
  r.e = &e;
  outer = lp_sync_write_begin(&e.sync);
  assert_int_equal(e.sync.seq & 1, 1); /* inside a change */
  assert_int_equal(pthread_create(&tid, NULL, reader_main, &r), 0);
  assert_int_equal(pthread_join(tid, NULL), 0);
  assert_int_equal(r.rc, LP_EBUSY);
  assert_int_equal(clk.calls, 12);
  assert_int_equal(r.s.attempts, 0);
  assert_int_equal(r.s.paused, 1);
  assert_int_equal(r.s.table.nfuncs, 0);
  assert_null(r.s.now);
  lp_snapshot_close(&r.s);
  /* The reader let go of the pause: ending the change does not block. */
  assert_int_equal(__atomic_load_n(&e.sync.pause, __ATOMIC_RELAXED), 0);
  lp_sync_write_end(&e.sync, outer);
  assert_int_equal(lp_snapshot_take(&e, &r.s), 0);
  assert_int_equal(r.s.attempts, 1);
  assert_int_equal(r.s.paused, 0);
  assert_int_equal(r.s.nnow, 1);
  lp_snapshot_close(&r.s);
  lp_engine_close(&e);
}

/* The same on the real monotonic clock: about one second. */
static void test_busy_real_clock(void **state) {
  lp_engine_t e;
  lp_thread_t *th;
  lp_func_t *f;
  reader_t r;
  pthread_t tid;
  uint64_t outer;
  (void)state;
  assert_int_equal(lp_engine_init(&e, lp_clock_monotonic, NULL), 0);
  busy_scene(&e, &th, &f);
  memset(&r, 0, sizeof(r));
  r.e = &e;
  outer = lp_sync_write_begin(&e.sync);
  assert_int_equal(pthread_create(&tid, NULL, reader_main, &r), 0);
  assert_int_equal(pthread_join(tid, NULL), 0);
  assert_int_equal(r.rc, LP_EBUSY);
  assert_true(r.t1 - r.t0 >= LP_SNAPSHOT_DEADLINE_NS);
  assert_true(r.t1 - r.t0 < 10 * LP_SNAPSHOT_DEADLINE_NS);
  assert_int_equal(r.s.attempts, 0);
  assert_int_equal(r.s.paused, 1);
  lp_snapshot_close(&r.s);
  assert_int_equal(__atomic_load_n(&e.sync.pause, __ATOMIC_RELAXED), 0);
  lp_sync_write_end(&e.sync, outer);
  print_message("busy: gave up after %.3f s\n", (r.t1 - r.t0) / 1e9);
  lp_engine_close(&e);
}

/* The reader, unable to copy, asks the writer to pause: the writer's
 * lp_sync_write_end then waits until the copy is made, and the copy holds
 * the change the writer had under way. */
static void test_writer_waits_for_copy(void **state) {
  uint64_t now = 500;
  lp_engine_t e;
  lp_thread_t *th;
  lp_func_t *f;
  reader_t r;
  pthread_t tid;
  uint64_t deadline;
  uint64_t outer;
  (void)state;
  assert_int_equal(lp_engine_init(&e, lp_test_clock, &now), 0);
  busy_scene(&e, &th, &f); /* f:1 since 0 */
  memset(&r, 0, sizeof(r));
  r.e = &e;
  outer = lp_sync_write_begin(&e.sync);
  assert_int_equal(lp_engine_line(&e, lp_engine_top(th), 3, 400), 0);
  assert_int_equal(pthread_create(&tid, NULL, reader_main, &r), 0);
  deadline = lp_clock_monotonic(NULL) + 5000000000ull;
  while (!__atomic_load_n(&e.sync.pause, __ATOMIC_RELAXED) &&
         lp_clock_monotonic(NULL) < deadline)
    sched_yield();
  assert_int_equal(__atomic_load_n(&e.sync.pause, __ATOMIC_RELAXED), 1);
  assert_int_equal(__atomic_load_n(&r.done, __ATOMIC_ACQUIRE), 0);
  lp_sync_write_end(&e.sync, outer); /* waits for the copy */
  assert_int_equal(__atomic_load_n(&e.sync.pause, __ATOMIC_RELAXED), 0);
  assert_int_equal(pthread_join(tid, NULL), 0);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.s.paused, 1);
  assert_int_equal(r.s.attempts, 1);
  assert_int_equal(r.s.t, 500);
  /* f:1 0..400; f:3 running 400..500. */
  ASSERT_LINE(r.s.table.funcs[0], 1, 1, 400, 0, 400);
  ASSERT_LINE(r.s.table.funcs[0], 3, 1, 100, 0, 100);
  lp_snapshot_close(&r.s);
  /* The writer carries on without waiting. */
  outer = lp_sync_write_begin(&e.sync);
  assert_int_equal(lp_engine_line(&e, lp_engine_top(th), 4, 600), 0);
  lp_sync_write_end(&e.sync, outer);
  lp_engine_close(&e);
}

/* ---- snapshots while a writer runs flat out ---- */

#define CONC_SNAPSHOTS 300
#define CONC_MAX_DYN 120
#define CONC_MAX_THREADS 8
#define CONC_RING 12
#define CONC_POOL_KEYS 100
#define CONC_GEN_BASE ((uintptr_t)0x7f2000000000u)
#define CONC_KEY_C ((uintptr_t)0x7f3000000000u)

typedef struct {
  lp_engine_t e;
  lp_func_t *f, *g, *c;
  lp_func_t *dyn[CONC_MAX_DYN];
  int ndyn;
  lp_thread_t *th[CONC_MAX_THREADS];
  int nth;
  lp_task_t *tc;              /* the long-lived task of c */
  lp_task_t *ring[CONC_RING]; /* live tasks, retired in turn */
  int nring, ring_at;
  int stop;                   /* set by the reader */
  /* Written by the writer, read after the join. */
  uint64_t windows, max_stall, stalls_over_1ms;
  int err;
  char errmsg[160];
} conc_t;

static uint64_t mono(void) { return lp_clock_monotonic(NULL); }

static void conc_fail(conc_t *c, int err, const char *what) {
  if (c->err == 0) {
    c->err = err ? err : -1;
    snprintf(c->errmsg, sizeof(c->errmsg), "%s: %d", what, err);
  }
}

/* What lp_sync_write_begin returns is kept in a uint64_t: it holds both
 * the old int (1: outermost) and a sequence number. */
static uint64_t wbegin(conc_t *c) { return lp_sync_write_begin(&c->e.sync); }

static void wend(conc_t *c, uint64_t outer) {
  uint64_t a = mono(), d;
  lp_sync_write_end(&c->e.sync, outer);
  d = mono() - a;
  if (d > c->max_stall)
    c->max_stall = d;
  if (d > 1000000)
    c->stalls_over_1ms++;
  __atomic_store_n(&c->windows, c->windows + 1, __ATOMIC_RELAXED);
}

#define CK(expr, what)                                                       \
  do {                                                                       \
    int rc_ = (expr);                                                        \
    if (rc_ < 0)                                                             \
      conc_fail(c, rc_, what);                                               \
  } while (0)

/* Calls func on th: start, line a, line b, return, at time t. */
static void call_ab(conc_t *c, lp_thread_t *th, lp_func_t *func, int32_t a,
                    int32_t b, int32_t extra) {
  CK(lp_engine_start(&c->e, th, func, (uintptr_t)func, mono()), "start");
  CK(lp_engine_line(&c->e, lp_engine_top(th), a, mono()), "line a");
  CK(lp_engine_line(&c->e, lp_engine_top(th), b, mono()), "line b");
  if (extra > 0)
    CK(lp_engine_line(&c->e, lp_engine_top(th), extra, mono()), "line extra");
  lp_engine_return(&c->e, th, mono());
}

static void *writer_main(void *arg) {
  conc_t *c = arg;
  uint64_t k, o;
  int i;
  uintptr_t u;
  char name[64];
  for (k = 0; !__atomic_load_n(&c->stop, __ATOMIC_RELAXED) && c->err == 0;
       k++) {
    lp_thread_t *th0 = c->th[0], *th1 = c->th[1];
    /* f: lines 10 and 11 in one change. */
    o = wbegin(c);
    CK(lp_engine_line(&c->e, lp_engine_top(th0), 10, mono()), "f:10");
    CK(lp_engine_line(&c->e, lp_engine_top(th0), 11, mono()), "f:11");
    wend(c, o);
    /* g called by f: lines 6 and 7. */
    o = wbegin(c);
    call_ab(c, th0, c->g, 6, 7, 0);
    wend(c, o);
    /* c resumes, runs lines 4 and 5, suspends again. */
    o = wbegin(c);
    CK(lp_engine_resume(&c->e, th0, CONC_KEY_C, c->c, 0xc1, 0, mono()) == 1
           ? 0
           : -100,
       "resume c");
    CK(lp_engine_line(&c->e, lp_engine_top(th0), 4, mono()), "c:4");
    CK(lp_engine_line(&c->e, lp_engine_top(th0), 5, mono()), "c:5");
    CK(lp_engine_yield(&c->e, th0, CONC_KEY_C, mono(), &u), "yield c");
    wend(c, o);
    /* Parked frames come and go on th1: a new key replaces a stale one,
     * and some are dropped. */
    if (k % 4 == 0) {
      uintptr_t key = CONC_GEN_BASE + (uintptr_t)((k / 4) % CONC_POOL_KEYS);
      o = wbegin(c);
      CK(lp_engine_start(&c->e, th1, c->c, 0xc2, mono()), "start c");
      CK(lp_engine_line(&c->e, lp_engine_top(th1), 7, mono()), "c:7");
      CK(lp_engine_yield(&c->e, th1, key, mono(), &u), "park c");
      wend(c, o);
      if (k % 12 == 0) {
        o = wbegin(c);
        lp_engine_drop(&c->e, key, mono(), &u);
        wend(c, o);
      }
    }
    /* New functions now and then (the table's array grows), and calls of
     * the known ones that reach past their lines (line arrays grow). */
    if (k % 64 == 0 && c->ndyn < CONC_MAX_DYN) {
      lp_func_t *d = NULL;
      snprintf(name, sizeof(name), "dyn%d", c->ndyn);
      o = wbegin(c);
      CK(lp_table_add(&c->e.table, 0x50000 + (uintptr_t)c->ndyn, "dyn.py",
                      name, 1, 1, 2, LP_KIND_FUNCTION, &d),
         "add");
      if (d != NULL) {
        c->dyn[c->ndyn++] = d;
        call_ab(c, th0, d, 1, 2, 0);
      }
      wend(c, o);
    }
    if (k % 3 == 0 && c->ndyn > 0) {
      lp_func_t *d = c->dyn[k % (uint64_t)c->ndyn];
      o = wbegin(c);
      call_ab(c, th0, d, 1, 2, 3 + (int32_t)(k % 57));
      wend(c, o);
    }
    /* Tasks: born in one change, retired (kept or folded) later. */
    if (k % 8 == 0) {
      lp_task_t *t = NULL;
      snprintf(name, sizeof(name), "T%llu",
               (unsigned long long)c->e.tasks.next_id + 1);
      o = wbegin(c);
      CK(lp_tasks_new(&c->e.tasks, name, k % 16 ? "coro1" : "coro2", mono(),
                      &t),
         "task");
      if (t != NULL) {
        CK(lp_engine_start(&c->e, th1, c->g, 0xa2, mono()), "start g");
        lp_engine_set_task(&c->e, th1, t, mono());
        CK(lp_engine_line(&c->e, lp_engine_top(th1), 6, mono()), "g:6 task");
        CK(lp_engine_line(&c->e, lp_engine_top(th1), 7, mono()), "g:7 task");
        lp_engine_return(&c->e, th1, mono());
        if (c->nring == CONC_RING) {
          CK(lp_tasks_unref(&c->e.tasks, c->ring[c->ring_at]), "unref");
          c->ring[c->ring_at] = t;
          c->ring_at = (c->ring_at + 1) % CONC_RING;
        } else {
          c->ring[c->nring++] = t;
        }
      }
      wend(c, o);
    }
    if (k % 24 == 0) {
      lp_task_t *t = c->nring ? c->ring[k % (uint64_t)c->nring] : c->tc;
      snprintf(name, sizeof(name), "%c%llu", (k / 24) % 2 ? 'R' : 'T',
               (unsigned long long)t->id);
      o = wbegin(c);
      CK(lp_task_rename(&c->e.tasks, t, name), "rename");
      wend(c, o);
    }
    /* Deep recursion now and then: the stack grows past 32 frames. */
    if (k % 512 == 0) {
      for (i = 0; i < 40; i++) {
        o = wbegin(c);
        CK(lp_engine_start(&c->e, th0, c->g, 0xa3, mono()), "deep");
        CK(lp_engine_line(&c->e, lp_engine_top(th0), 6, mono()), "deep 6");
        CK(lp_engine_line(&c->e, lp_engine_top(th0), 7, mono()), "deep 7");
        wend(c, o);
      }
      for (i = 0; i < 40; i++) {
        o = wbegin(c);
        lp_engine_return(&c->e, th0, mono());
        wend(c, o);
      }
    }
    /* More threads, each left running f:11. */
    if (k % 1000 == 999 && c->nth < CONC_MAX_THREADS) {
      lp_thread_t *nt = NULL;
      o = wbegin(c);
      CK(lp_engine_thread_new(&c->e, 1000 + (uint64_t)c->nth, &nt), "thread");
      if (nt != NULL) {
        c->th[c->nth++] = nt;
        CK(lp_engine_start(&c->e, nt, c->f, 0xf9, mono()), "start f");
        CK(lp_engine_line(&c->e, lp_engine_top(nt), 10, mono()), "f:10 new");
        CK(lp_engine_line(&c->e, lp_engine_top(nt), 11, mono()), "f:11 new");
      }
      wend(c, o);
    }
  }
  return NULL;
}

/* Lines hit together in every change: equal hits in any consistent copy. */
static int check_pairs(const lp_snapshot_t *s, char *why, size_t n) {
  static const struct {
    uint32_t func;
    int32_t a, b;
  } pairs[] = {{0, 10, 11}, {1, 6, 7}, {2, 4, 5}};
  uint32_t i;
  for (i = 0; i < 3; i++) {
    const lp_line_t *a = lp_func_line(s->table.funcs[pairs[i].func],
                                      pairs[i].a),
                    *b = lp_func_line(s->table.funcs[pairs[i].func],
                                      pairs[i].b);
    if (a == NULL || b == NULL || a->hits != b->hits) {
      snprintf(why, n, "func %u lines %d/%d: %llu != %llu", pairs[i].func,
               pairs[i].a, pairs[i].b,
               a ? (unsigned long long)a->hits : 0ull,
               b ? (unsigned long long)b->hits : 0ull);
      return 0;
    }
  }
  for (i = 3; i < s->table.nfuncs; i++) {
    const lp_line_t *a = lp_func_line(s->table.funcs[i], 1),
                    *b = lp_func_line(s->table.funcs[i], 2);
    if (a == NULL || b == NULL || a->hits != b->hits || a->hits == 0) {
      snprintf(why, n, "dyn func %u: lines 1/2 differ", i);
      return 0;
    }
  }
  return 1;
}

/* Every counter of prev is at most its value in s. */
static int check_monotonic(const lp_snapshot_t *prev, const lp_snapshot_t *s,
                           char *why, size_t n) {
  uint32_t i, j;
  if (s->table.nfuncs < prev->table.nfuncs || s->t < prev->t) {
    snprintf(why, n, "fewer functions or time went back");
    return 0;
  }
  for (i = 0; i < prev->table.nfuncs; i++) {
    const lp_func_t *pf = prev->table.funcs[i];
    lp_func_t *sf = s->table.funcs[i];
    for (j = 0; j < pf->nlines; j++) {
      const lp_line_t *a = &pf->lines[j];
      const lp_line_t *b = lp_func_line(sf, pf->base + (int32_t)j);
      if (b == NULL) {
        snprintf(why, n, "func %u lost line %d", i, pf->base + (int32_t)j);
        return 0;
      }
      if (b->hits < a->hits || b->time < a->time || b->await < a->await ||
          b->max < a->max) {
        snprintf(why, n,
                 "func %u line %d went back: hits %llu->%llu time "
                 "%llu->%llu await %llu->%llu max %llu->%llu",
                 i, pf->base + (int32_t)j, (unsigned long long)a->hits,
                 (unsigned long long)b->hits, (unsigned long long)a->time,
                 (unsigned long long)b->time, (unsigned long long)a->await,
                 (unsigned long long)b->await, (unsigned long long)a->max,
                 (unsigned long long)b->max);
        return 0;
      }
    }
  }
  return 1;
}

/* Names match ids, a task never counts more than its life, NOW entries
 * point at real lines of known threads. */
static int check_records(const lp_snapshot_t *s, char *why, size_t n) {
  uint32_t i;
  for (i = 0; i < s->ntasks; i++) {
    const lp_task_t *t = &s->tasks[i];
    char want[2][32];
    if (t->id == 0) {
      if (strcmp(t->name, t->coro) != 0 || strncmp(t->coro, "coro", 4) != 0 ||
          t->folded == 0) {
        snprintf(why, n, "bad fold %s/%s", t->name, t->coro);
        return 0;
      }
      continue;
    }
    snprintf(want[0], sizeof(want[0]), "T%llu", (unsigned long long)t->id);
    snprintf(want[1], sizeof(want[1]), "R%llu", (unsigned long long)t->id);
    if (strcmp(t->name, want[0]) != 0 && strcmp(t->name, want[1]) != 0) {
      snprintf(why, n, "task %llu named %.40s", (unsigned long long)t->id,
               t->name);
      return 0;
    }
    if (t->last < t->first || t->time + t->await > t->last - t->first) {
      snprintf(why, n, "task %llu: time %llu + await %llu > life %llu",
               (unsigned long long)t->id, (unsigned long long)t->time,
               (unsigned long long)t->await,
               (unsigned long long)(t->last - t->first));
      return 0;
    }
  }
  for (i = 0; i < s->nnow; i++) {
    const lp_now_t *nw = &s->now[i];
    if (nw->func >= s->table.nfuncs ||
        lp_func_line(s->table.funcs[nw->func], nw->lineno) == NULL ||
        !(nw->thread == 1 || nw->thread == 2 ||
          (nw->thread >= 1000 && nw->thread < 1000 + CONC_MAX_THREADS))) {
      snprintf(why, n, "bad NOW entry thread %llu func %u line %d",
               (unsigned long long)nw->thread, nw->func, nw->lineno);
      return 0;
    }
  }
  if (s->nnow < 1) {
    snprintf(why, n, "thread 1 always runs f");
    return 0;
  }
  return 1;
}

static void test_concurrent(void **state) {
  conc_t *c = calloc(1, sizeof(*c));
  pthread_t tid;
  lp_snapshot_t prev, s;
  uint64_t longest_take = 0, t_start, t_end;
  uint32_t i, paused = 0, max_attempts = 0;
  uintptr_t u;
  char why[256];
  (void)state;
  assert_non_null(c);
  assert_int_equal(lp_engine_init(&c->e, lp_clock_monotonic, NULL), 0);
  c->e.tasks.keep = 16; /* retired tasks get folded soon */
  assert_int_equal(lp_table_add(&c->e.table, KF, "t.py", "f", 1, 1, 20,
                                LP_KIND_FUNCTION, &c->f),
                   0);
  assert_int_equal(lp_table_add(&c->e.table, KG, "t.py", "g", 5, 5, 20,
                                LP_KIND_FUNCTION, &c->g),
                   0);
  assert_int_equal(lp_table_add(&c->e.table, KC, "t.py", "c", 1, 1, 20,
                                LP_KIND_COROUTINE, &c->c),
                   0);
  assert_int_equal(lp_engine_thread_new(&c->e, 1, &c->th[0]), 0);
  assert_int_equal(lp_engine_thread_new(&c->e, 2, &c->th[1]), 0);
  c->nth = 2;
  /* th 1 runs f at line 11; c is parked at line 5 in task 1. */
  assert_int_equal(lp_engine_start(&c->e, c->th[0], c->f, 0xf1, mono()), 0);
  assert_int_equal(
      lp_engine_line(&c->e, lp_engine_top(c->th[0]), 10, mono()), 0);
  assert_int_equal(
      lp_engine_line(&c->e, lp_engine_top(c->th[0]), 11, mono()), 0);
  assert_int_equal(lp_engine_start(&c->e, c->th[0], c->c, 0xc1, mono()), 0);
  assert_int_equal(lp_tasks_new(&c->e.tasks, "T1", "c", mono(), &c->tc), 0);
  lp_engine_set_task(&c->e, c->th[0], c->tc, mono());
  assert_int_equal(
      lp_engine_line(&c->e, lp_engine_top(c->th[0]), 4, mono()), 0);
  assert_int_equal(
      lp_engine_line(&c->e, lp_engine_top(c->th[0]), 5, mono()), 0);
  assert_int_equal(
      lp_engine_yield(&c->e, c->th[0], CONC_KEY_C, mono(), &u), 0);

  assert_int_equal(pthread_create(&tid, NULL, writer_main, c), 0);
  memset(&prev, 0, sizeof(prev));
  lp_table_init(&prev.table);
  t_start = mono();
  for (i = 0; i < CONC_SNAPSHOTS; i++) {
    uint64_t a = mono(), d;
    int rc = lp_snapshot_take(&c->e, &s);
    d = mono() - a;
    if (d > longest_take)
      longest_take = d;
    if (rc != 0) {
      __atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
      pthread_join(tid, NULL);
      fail_msg("snapshot %u: %s", i, lp_err_name(rc));
    }
    paused += s.paused;
    if (s.attempts > max_attempts)
      max_attempts = s.attempts;
    if (!check_pairs(&s, why, sizeof(why)) ||
        !check_monotonic(&prev, &s, why, sizeof(why)) ||
        !check_records(&s, why, sizeof(why))) {
      __atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
      pthread_join(tid, NULL);
      fail_msg("snapshot %u (attempts %u): %s", i, s.attempts, why);
    }
    lp_snapshot_close(&prev);
    prev = s;
    /* Let the writer make a few hundred changes between snapshots, so
     * they really run side by side (up to a second each). */
    {
      uint64_t w0 = __atomic_load_n(&c->windows, __ATOMIC_RELAXED), t0 = mono();
      while (__atomic_load_n(&c->windows, __ATOMIC_RELAXED) < w0 + 300 &&
             mono() - t0 < 1000000000ull)
        sched_yield();
    }
  }
  t_end = mono();
  __atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
  assert_int_equal(pthread_join(tid, NULL), 0);
  if (c->err != 0)
    fail_msg("writer: %s", c->errmsg);
  print_message("concurrent: %d snapshots in %.3f s, writer made %llu "
                "changes; %u snapshots paused the writer, at most %u "
                "attempts; longest snapshot %.3f ms; longest writer stall "
                "%.3f ms (%llu over 1 ms); %u functions, %u tasks, %u NOW\n",
                CONC_SNAPSHOTS, (t_end - t_start) / 1e9,
                (unsigned long long)c->windows, paused, max_attempts,
                longest_take / 1e6, c->max_stall / 1e6,
                (unsigned long long)c->stalls_over_1ms, prev.table.nfuncs,
                prev.ntasks, prev.nnow);
  /* The writer progressed and was never held for long. */
  assert_true(c->windows > CONC_SNAPSHOTS);
  assert_true(c->max_stall < 2000000000ull);
  assert_true(prev.table.nfuncs > 3);
  lp_snapshot_close(&prev);
  lp_engine_close(&c->e);
  free(c);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_settled_counters),
      T(test_later_snapshot),
      T(test_task_names),
      T(test_encode_round_trip),
      cmocka_unit_test_teardown(test_empty_engine, lp_test_teardown_alloc),
      T(test_alloc_failure),
      cmocka_unit_test(test_busy_fake_clock),
      cmocka_unit_test(test_busy_real_clock),
      cmocka_unit_test(test_writer_waits_for_copy),
      cmocka_unit_test(test_concurrent),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
