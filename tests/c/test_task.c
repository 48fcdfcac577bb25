/* test_task.c - lp_tasks: ids and names, references, retirement (kept whole
 * or folded per coroutine name), bounded memory, clear, and allocation
 * failure. The records are read back only through lp_tasks_each, and every
 * expectation is worked out by hand in the comments or by an independent
 * model (model_check: the heaviest `keep` retired tasks kept, the rest
 * summed per coroutine name). */
#include "lp_test.h"

#include <stdio.h>

#include "lp_task.h"

/* ---- reading the records back ---- */

/* What lp_tasks_each visited, in order. */
typedef struct {
  const lp_task_t **rec;
  size_t n, cap;
} seen_t;

static void seen_cb(const lp_task_t *t, void *arg) {
  seen_t *s = arg;
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    s->rec = realloc(s->rec, s->cap * sizeof(*s->rec));
    assert_non_null(s->rec);
  }
  s->rec[s->n++] = t;
}

static void count_cb(const lp_task_t *t, void *arg) {
  (void)t;
  ++*(size_t *)arg;
}

/* Visits every record into s (emptied first) and checks the order the
 * header promises: live tasks (referenced: refs > 0), then kept tasks
 * (retired whole: refs 0, id > 0), then folds (id 0). */
static void collect(const lp_tasks_t *r, seen_t *s) {
  size_t i;
  int cat, prev = 0;
  s->n = 0;
  lp_tasks_each(r, seen_cb, s);
  for (i = 0; i < s->n; i++) {
    const lp_task_t *t = s->rec[i];
    cat = t->id == 0 ? 2 : t->refs == 0 ? 1 : 0;
    if (t->id == 0)
      assert_true(t->folded >= 1);
    else
      assert_int_equal(t->folded, 0);
    assert_true(cat >= prev);
    prev = cat;
  }
}

static size_t count_records(const lp_tasks_t *r) {
  size_t n = 0;
  lp_tasks_each(r, count_cb, &n);
  return n;
}

/* The record of task id (live or kept), or NULL. */
static const lp_task_t *by_id(const seen_t *s, uint64_t id) {
  size_t i;
  const lp_task_t *found = NULL;
  for (i = 0; i < s->n; i++)
    if (s->rec[i]->id == id) {
      assert_null(found); /* at most once */
      found = s->rec[i];
    }
  return found;
}

/* The fold of coroutine name coro, or NULL. */
static const lp_task_t *fold_of(const seen_t *s, const char *coro) {
  size_t i;
  const lp_task_t *found = NULL;
  for (i = 0; i < s->n; i++)
    if (s->rec[i]->id == 0 && strcmp(s->rec[i]->coro, coro) == 0) {
      assert_null(found); /* one fold per name */
      found = s->rec[i];
    }
  return found;
}

static size_t count_where(const seen_t *s, int cat) {
  size_t i, n = 0;
  for (i = 0; i < s->n; i++) {
    const lp_task_t *t = s->rec[i];
    if ((t->id == 0 ? 2 : t->refs == 0 ? 1 : 0) == cat)
      n++;
  }
  return n;
}
#define NLIVE(s) count_where((s), 0)
#define NKEPT(s) count_where((s), 1)
#define NFOLDS(s) count_where((s), 2)

/* Asserts the totals of one record; reported at the caller. */
#define ASSERT_REC(rec, tm, aw, fst, lst, fo)                                \
  do {                                                                       \
    const lp_task_t *r_ = (rec);                                             \
    assert_non_null(r_);                                                     \
    assert_int_equal(r_->time, (tm));                                        \
    assert_int_equal(r_->await, (aw));                                       \
    assert_int_equal(r_->first, (fst));                                      \
    assert_int_equal(r_->last, (lst));                                       \
    assert_int_equal(r_->folded, (fo));                                      \
  } while (0)

/* Creates a task that must succeed. */
static lp_task_t *new_task(lp_tasks_t *r, const char *name, const char *coro,
                           uint64_t t) {
  lp_task_t *task = NULL;
  assert_int_equal(lp_tasks_new(r, name, coro, t, &task), 0);
  assert_non_null(task);
  return task;
}

/* Gives a live task the totals the engine would have counted. */
static void set_totals(lp_task_t *t, uint64_t time, uint64_t await,
                       uint64_t last) {
  t->time = time;
  t->await = await;
  t->last = last;
}

/* ---- an independent model of retirement ---- */

enum { M_LIVE = 0, M_RETIRED = 1 };

typedef struct {
  uint64_t id;
  const char *name, *coro;
  uint64_t time, await, first, last;
  uint32_t refs;
  int state;
} mtask_t;

static int by_wall_desc(const void *a, const void *b) {
  const mtask_t *x = *(const mtask_t *const *)a, *y = *(const mtask_t *const *)b;
  uint64_t wx = x->time + x->await, wy = y->time + y->await;
  return wx < wy ? 1 : wx > wy ? -1 : 0;
}

static int by_coro(const void *a, const void *b) {
  return strcmp((*(const mtask_t *const *)a)->coro,
                (*(const mtask_t *const *)b)->coro);
}

/* Checks every record of r against the model m[0..n): live tasks as they
 * are; of the retired ones (distinct walls, retired without allocation
 * failure), the `keep` heaviest kept whole and the rest summed into one
 * fold per coroutine name (first the minimum, last the maximum). */
static void model_check(const lp_tasks_t *r, const mtask_t *m, size_t n,
                        uint32_t keep) {
  seen_t s = {0};
  const mtask_t **ret = malloc((n ? n : 1) * sizeof(*ret));
  size_t i, j, nret = 0, nlive = 0, nkept, nfolds = 0;
  assert_non_null(ret);
  collect(r, &s);
  for (i = 0; i < n; i++) {
    if (m[i].state == M_LIVE) {
      const lp_task_t *t = by_id(&s, m[i].id);
      nlive++;
      assert_non_null(t);
      assert_int_equal(t->refs, m[i].refs);
      assert_string_equal(t->name, m[i].name);
      assert_string_equal(t->coro, m[i].coro);
      ASSERT_REC(t, m[i].time, m[i].await, m[i].first, m[i].last, 0);
    } else {
      ret[nret++] = &m[i];
    }
  }
  qsort(ret, nret, sizeof(*ret), by_wall_desc);
  for (i = 1; i < nret; i++) /* the model needs distinct walls */
    assert_true(ret[i - 1]->time + ret[i - 1]->await >
                ret[i]->time + ret[i]->await);
  nkept = nret < keep ? nret : keep;
  for (i = 0; i < nkept; i++) {
    const lp_task_t *t = by_id(&s, ret[i]->id);
    assert_non_null(t);
    assert_int_equal(t->refs, 0);
    assert_string_equal(t->name, ret[i]->name);
    assert_string_equal(t->coro, ret[i]->coro);
    ASSERT_REC(t, ret[i]->time, ret[i]->await, ret[i]->first, ret[i]->last,
               0);
  }
  /* The rest, grouped by coroutine name. */
  qsort(ret + nkept, nret - nkept, sizeof(*ret), by_coro);
  for (i = nkept; i < nret; i = j) {
    uint64_t tm = 0, aw = 0, fst = UINT64_MAX, lst = 0, cnt = 0;
    const lp_task_t *f;
    /* (Not kept whole either: the kept count below is exact.) */
    for (j = i; j < nret && strcmp(ret[j]->coro, ret[i]->coro) == 0; j++) {
      tm += ret[j]->time;
      aw += ret[j]->await;
      fst = ret[j]->first < fst ? ret[j]->first : fst;
      lst = ret[j]->last > lst ? ret[j]->last : lst;
      cnt++;
    }
    f = fold_of(&s, ret[i]->coro);
    assert_non_null(f);
    assert_string_equal(f->name, ret[i]->coro);
    ASSERT_REC(f, tm, aw, fst, lst, cnt);
    nfolds++;
  }
  assert_int_equal(NLIVE(&s), nlive);
  assert_int_equal(NKEPT(&s), nkept);
  assert_int_equal(NFOLDS(&s), nfolds);
  assert_int_equal(s.n, nlive + nkept + nfolds);
  free(ret);
  free(s.rec);
}

/* ------------------------------------------------------------------ */

static void test_init_empty(void **state) {
  lp_tasks_t r;
  (void)state;
  lp_test_alloc_count();
  lp_tasks_init(&r, 0);
  assert_int_equal(r.keep, LP_TASKS_KEEP); /* 0: the default */
  assert_int_equal(count_records(&r), 0);
  lp_tasks_clear(&r);
  lp_tasks_close(&r);
  lp_tasks_init(&r, 3);
  assert_int_equal(r.keep, 3);
  lp_tasks_close(&r);
  lp_tasks_close(&r); /* closing twice is fine */
  assert_int_equal(r.keep, 3);
  assert_int_equal(lp_test_alloc.allocs, 0); /* nothing allocated */
  lp_test_alloc_reset();
}

static void test_new_ids_names(void **state) {
  lp_tasks_t r;
  lp_task_t *a, *b, *c;
  char name[16], coro[16];
  seen_t s = {0};
  (void)state;
  lp_tasks_init(&r, 3);
  strcpy(name, "Task-1");
  strcpy(coro, "main");
  a = new_task(&r, name, coro, 100);
  /* Names are copied: the caller's buffers can change. */
  assert_ptr_not_equal(a->name, name);
  assert_ptr_not_equal(a->coro, coro);
  strcpy(name, "XXXX");
  strcpy(coro, "YYYY");
  b = new_task(&r, "Task-2", "worker", 150);
  c = new_task(&r, "", "Srv.handle.<locals>.inner", 150);
  assert_string_equal(a->name, "Task-1");
  assert_string_equal(a->coro, "main");
  /* ids in order of creation; one reference (the task object); first and
   * last at the creation time; nothing counted yet. */
  assert_int_equal(a->id, 1);
  assert_int_equal(b->id, 2);
  assert_int_equal(c->id, 3);
  assert_int_equal(a->refs, 1);
  assert_int_equal(b->refs, 1);
  assert_int_equal(c->refs, 1);
  ASSERT_REC(a, 0, 0, 100, 100, 0);
  ASSERT_REC(b, 0, 0, 150, 150, 0);
  ASSERT_REC(c, 0, 0, 150, 150, 0);
  assert_string_equal(c->name, "");
  assert_string_equal(c->coro, "Srv.handle.<locals>.inner");
  /* All three live, in order of creation. */
  collect(&r, &s);
  assert_int_equal(s.n, 3);
  assert_ptr_equal(s.rec[0], a);
  assert_ptr_equal(s.rec[1], b);
  assert_ptr_equal(s.rec[2], c);
  free(s.rec);
  lp_tasks_close(&r);
  /* A closed registry starts over. */
  assert_int_equal(count_records(&r), 0);
  a = new_task(&r, "again", "main", 0);
  assert_int_equal(a->id, 1);
  lp_tasks_close(&r);
}

static void test_refs_delay_retirement(void **state) {
  lp_tasks_t r;
  lp_task_t *a, *b;
  seen_t s = {0};
  (void)state;
  lp_tasks_init(&r, 3);
  a = new_task(&r, "A", "main", 10);
  b = new_task(&r, "B", "main", 20);
  /* Two frames of A reference it (as lp_engine_set_task does). */
  a->refs += 2;
  set_totals(a, 30, 5, 60);
  set_totals(b, 7, 0, 27);
  /* The object dies first: two frames still reference A, it stays live. */
  assert_int_equal(lp_tasks_unref(&r, a), 0);
  assert_int_equal(a->refs, 2);
  assert_int_equal(lp_tasks_unref(&r, a), 0);
  assert_int_equal(a->refs, 1);
  collect(&r, &s);
  assert_int_equal(NLIVE(&s), 2);
  assert_int_equal(s.n, 2);
  /* Its last frame ends: A is retired, kept whole with its totals. */
  assert_int_equal(lp_tasks_unref(&r, a), 0);
  collect(&r, &s);
  assert_int_equal(s.n, 2);
  assert_int_equal(NLIVE(&s), 1);
  assert_int_equal(NKEPT(&s), 1);
  assert_ptr_equal(s.rec[0], b);
  assert_int_equal(s.rec[1]->id, 1);
  assert_string_equal(s.rec[1]->name, "A");
  assert_string_equal(s.rec[1]->coro, "main");
  assert_int_equal(s.rec[1]->refs, 0);
  ASSERT_REC(s.rec[1], 30, 5, 10, 60, 0);
  /* The frames end first, the object dies last: retired then. */
  b->refs++;
  assert_int_equal(lp_tasks_unref(&r, b), 0);
  assert_int_equal(count_records(&r), 2);
  collect(&r, &s);
  assert_int_equal(NLIVE(&s), 1);
  assert_int_equal(lp_tasks_unref(&r, b), 0);
  collect(&r, &s);
  assert_int_equal(NLIVE(&s), 0);
  assert_int_equal(NKEPT(&s), 2);
  ASSERT_REC(by_id(&s, 2), 7, 0, 20, 27, 0);
  ASSERT_REC(by_id(&s, 1), 30, 5, 10, 60, 0);
  free(s.rec);
  lp_tasks_close(&r);
}

static void test_fold_lightest(void **state) {
  lp_tasks_t r;
  lp_task_t *t[10];
  seen_t s = {0};
  (void)state;
  lp_tasks_init(&r, 3);
  /* Task  coro  time await  wall  first last
   *  1     a     60   40    100    10   110
   *  2     a    100  200    300    20   320
   *  3     b    150   50    200    30   230
   *  4     a     50    0     50    40    90
   *  5     b      0  400    400    50   450
   *  6     b     90   60    150    60   210
   *  7     c    250    0    250    70   320
   *  8     d      1    1      2    80    90  (stays live)
   *  9     a     15    5     20    85   100 */
  t[1] = new_task(&r, "t1", "a", 10);
  t[2] = new_task(&r, "t2", "a", 20);
  t[3] = new_task(&r, "t3", "b", 30);
  t[4] = new_task(&r, "t4", "a", 40);
  t[5] = new_task(&r, "t5", "b", 50);
  t[6] = new_task(&r, "t6", "b", 60);
  t[7] = new_task(&r, "t7", "c", 70);
  t[8] = new_task(&r, "t8", "d", 80);
  t[9] = new_task(&r, "t9", "a", 85);
  set_totals(t[1], 60, 40, 110);
  set_totals(t[2], 100, 200, 320);
  set_totals(t[3], 150, 50, 230);
  set_totals(t[4], 50, 0, 90);
  set_totals(t[5], 0, 400, 450);
  set_totals(t[6], 90, 60, 210);
  set_totals(t[7], 250, 0, 320);
  set_totals(t[8], 1, 1, 90);
  set_totals(t[9], 15, 5, 100);

  /* The first three retired are kept whole, whatever their weight. */
  assert_int_equal(lp_tasks_unref(&r, t[1]), 0);
  assert_int_equal(lp_tasks_unref(&r, t[2]), 0);
  assert_int_equal(lp_tasks_unref(&r, t[3]), 0);
  collect(&r, &s);
  assert_int_equal(NLIVE(&s), 6);
  assert_int_equal(NKEPT(&s), 3);
  assert_int_equal(NFOLDS(&s), 0);
  ASSERT_REC(by_id(&s, 1), 60, 40, 10, 110, 0);
  ASSERT_REC(by_id(&s, 2), 100, 200, 20, 320, 0);
  ASSERT_REC(by_id(&s, 3), 150, 50, 30, 230, 0);

  /* 4 (50) is the lightest of {100, 300, 200, 50}: folded into "a". */
  assert_int_equal(lp_tasks_unref(&r, t[4]), 0);
  collect(&r, &s);
  assert_int_equal(NKEPT(&s), 3);
  assert_int_equal(NFOLDS(&s), 1);
  assert_null(by_id(&s, 4));
  ASSERT_REC(fold_of(&s, "a"), 50, 0, 40, 90, 1);

  /* 5 (400): the lightest of {100, 300, 200, 400} is 1, kept until now:
   * folded into "a" (time 50 + 60, await 0 + 40, first min(40, 10),
   * last max(90, 110)); 5 is kept. */
  assert_int_equal(lp_tasks_unref(&r, t[5]), 0);
  collect(&r, &s);
  assert_null(by_id(&s, 1));
  ASSERT_REC(by_id(&s, 5), 0, 400, 50, 450, 0);
  ASSERT_REC(fold_of(&s, "a"), 110, 40, 10, 110, 2);

  /* 6 (150): the lightest of {300, 200, 400, 150} is 6 itself: a new fold
   * "b". */
  assert_int_equal(lp_tasks_unref(&r, t[6]), 0);
  /* 7 (250): the lightest of {300, 200, 400, 250} is 3 (200, "b"). */
  assert_int_equal(lp_tasks_unref(&r, t[7]), 0);
  /* 9 (20): the lightest of everything: into "a", whose first (10) and last
   * (110) already cover 85 and 100. */
  assert_int_equal(lp_tasks_unref(&r, t[9]), 0);

  collect(&r, &s);
  /* Live 8; kept 2, 5, 7; folds "a" (4, 1, 9) then "b" (6, 3), in order of
   * creation. */
  assert_int_equal(s.n, 1 + 3 + 2);
  assert_ptr_equal(s.rec[0], t[8]);
  ASSERT_REC(s.rec[0], 1, 1, 80, 90, 0);
  assert_int_equal(NKEPT(&s), 3);
  ASSERT_REC(by_id(&s, 2), 100, 200, 20, 320, 0);
  ASSERT_REC(by_id(&s, 5), 0, 400, 50, 450, 0);
  ASSERT_REC(by_id(&s, 7), 250, 0, 70, 320, 0);
  assert_string_equal(by_id(&s, 7)->name, "t7");
  assert_null(by_id(&s, 1));
  assert_null(by_id(&s, 3));
  assert_null(by_id(&s, 4));
  assert_null(by_id(&s, 6));
  assert_null(by_id(&s, 9));
  assert_int_equal(s.rec[4]->id, 0);
  assert_string_equal(s.rec[4]->name, "a");
  assert_string_equal(s.rec[4]->coro, "a");
  ASSERT_REC(s.rec[4], 50 + 60 + 15, 0 + 40 + 5, 10, 110, 3);
  assert_int_equal(s.rec[5]->id, 0);
  assert_string_equal(s.rec[5]->name, "b");
  assert_string_equal(s.rec[5]->coro, "b");
  /* 6 then 3: time 90 + 150, await 60 + 50, first min(60, 30), last
   * max(210, 230). */
  ASSERT_REC(s.rec[5], 240, 110, 30, 230, 2);
  assert_null(fold_of(&s, "c"));
  assert_null(fold_of(&s, "d"));

  /* The same, by the model. */
  {
    mtask_t m[9];
    static const char *coros[] = {"a", "a", "b", "a", "b", "b", "c", "d", "a"};
    static const char *names[] = {"t1", "t2", "t3", "t4", "t5",
                                  "t6", "t7", "t8", "t9"};
    static const uint64_t tm[] = {60, 100, 150, 50, 0, 90, 250, 1, 15};
    static const uint64_t aw[] = {40, 200, 50, 0, 400, 60, 0, 1, 5};
    static const uint64_t fs[] = {10, 20, 30, 40, 50, 60, 70, 80, 85};
    static const uint64_t ls[] = {110, 320, 230, 90, 450, 210, 320, 90, 100};
    int i;
    for (i = 0; i < 9; i++) {
      mtask_t mt = {(uint64_t)i + 1, names[i], coros[i], tm[i], aw[i],
                    fs[i], ls[i], i == 7 ? 1 : 0,
                    i == 7 ? M_LIVE : M_RETIRED};
      m[i] = mt;
    }
    model_check(&r, m, 9, 3);
  }
  free(s.rec);
  lp_tasks_close(&r);
}

static void test_live_removal_keeps_slots(void **state) {
  static const char *names[] = {"T1", "T2", "T3", "T4",
                                "T5", "T6", "T7", "T8"};
  static const int order[] = {3, 1, 7, 0, 5, 2, 6, 4};
  lp_tasks_t r;
  lp_task_t *t[8];
  mtask_t m[8];
  int i;
  (void)state;
  lp_tasks_init(&r, 10);
  /* Eight tasks T1..T8: task i (0-based) created at i, wall 10 i + 10,
   * last 100 + i. Retired from the middle of the live list, then its end,
   * then its start: every survivor must stay reachable (and retirable)
   * whatever the removals did to the list. */
  for (i = 0; i < 8; i++) {
    mtask_t mt = {(uint64_t)i + 1, names[i], "co", (uint64_t)(10 * i + 10),
                  0, (uint64_t)i, (uint64_t)(100 + i), 1, M_LIVE};
    t[i] = new_task(&r, names[i], "co", (uint64_t)i);
    set_totals(t[i], (uint64_t)(10 * i + 10), 0, (uint64_t)(100 + i));
    m[i] = mt;
  }
  model_check(&r, m, 8, 10);
  for (i = 0; i < 8; i++) {
    assert_int_equal(lp_tasks_unref(&r, t[order[i]]), 0);
    m[order[i]].state = M_RETIRED;
    m[order[i]].refs = 0;
    model_check(&r, m, 8, 10);
  }
  /* A new task after all that: the next id. */
  assert_int_equal(new_task(&r, "T9", "co", 9)->id, 9);
  lp_tasks_close(&r);
}

static void test_model_small(void **state) {
  enum { N = 60, KEEP = 4 };
  static const char *coros[] = {"alpha", "beta", "gamma"};
  lp_tasks_t r;
  lp_task_t *t[N];
  mtask_t m[N];
  char names[N][8];
  int i;
  (void)state;
  lp_tasks_init(&r, KEEP);
  /* Walls (37 * i) mod 61 + 1: a permutation of 1..60, so the heaviest
   * retired are not the last retired ones. Retired two steps behind
   * creation, with a model check after every step. */
  for (i = 0; i < N; i++) {
    uint64_t w = (uint64_t)(37 * i % 61) + 1;
    snprintf(names[i], sizeof(names[i]), "k%d", i);
    t[i] = new_task(&r, names[i], coros[i % 3], (uint64_t)(1000 + i));
    set_totals(t[i], w / 2, w - w / 2, (uint64_t)(1000 + i) + w);
    {
      mtask_t mt = {(uint64_t)i + 1, names[i], coros[i % 3], w / 2,
                    w - w / 2, (uint64_t)(1000 + i), (uint64_t)(1000 + i) + w,
                    1, M_LIVE};
      m[i] = mt;
    }
    if (i >= 2) {
      assert_int_equal(lp_tasks_unref(&r, t[i - 2]), 0);
      m[i - 2].state = M_RETIRED;
      m[i - 2].refs = 0;
    }
    model_check(&r, m, (size_t)i + 1, KEEP);
  }
  lp_tasks_close(&r);
}

static void test_many_names(void **state) {
  enum { NAMES = 400, PER = 3, N = NAMES * PER, KEEP = 3 };
  lp_tasks_t r;
  lp_task_t **t = calloc(N, sizeof(*t));
  mtask_t *m = calloc(N, sizeof(*m));
  char (*coro)[16] = calloc(NAMES, sizeof(*coro));
  int i;
  (void)state;
  assert_non_null(t);
  assert_non_null(m);
  assert_non_null(coro);
  /* Names that are prefixes of one another ("n1", "n10", "n100"), that
   * are anagrams ("ab", "ba"), the empty name, and a long one: every one
   * gets a fold of its own. */
  for (i = 0; i < NAMES; i++)
    snprintf(coro[i], sizeof(coro[i]), "n%d", i);
  strcpy(coro[0], "");
  strcpy(coro[1], "ab");
  strcpy(coro[2], "ba");
  strcpy(coro[3], "a");
  strcpy(coro[4], "b");
  strcpy(coro[5], "aaaaaaaaaaaaaaa");
  lp_tasks_init(&r, KEEP);
  /* Task i has coroutine coro[i % NAMES] and wall 3 + (7 * i) mod N (7 is
   * prime to N = 1200: distinct walls); retired at once. */
  for (i = 0; i < N; i++) {
    uint64_t w = (uint64_t)(7 * i % N) + 3;
    const char *c = coro[i % NAMES];
    mtask_t mt = {(uint64_t)i + 1, "x", c, w - 2, 2, (uint64_t)i,
                  (uint64_t)i + w, 0, M_RETIRED};
    t[i] = new_task(&r, "x", c, (uint64_t)i);
    set_totals(t[i], w - 2, 2, (uint64_t)i + w);
    assert_int_equal(lp_tasks_unref(&r, t[i]), 0);
    m[i] = mt;
  }
  model_check(&r, m, N, KEEP);
  /* 3 kept, and at least NAMES - 3 folds (one per name not wholly kept). */
  assert_true(count_records(&r) >= NAMES);
  assert_true(count_records(&r) <= KEEP + NAMES);
  lp_tasks_close(&r);
  free(t);
  free(m);
  free(coro);
}

/* Two coroutine names with the same name hash: their 64-bit FNV-1a hashes
 * are both 0x7d514fb45b20d871. Found offline by a parallel rho
 * (distinguished points) search over 11-character names. */
#define COLLIDE1 "ZeC4HyCmxKG"
#define COLLIDE2 "FJOn8Pbq08C"

static uint64_t fnv1a_or1(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h | 1;
}

static void test_name_hash_collision(void **state) {
  lp_tasks_t r;
  lp_task_t *k[3], *t[5];
  seen_t s = {0};
  int i;
  (void)state;
  /* The pair really collides (same hash, different names). */
  assert_int_equal(fnv1a_or1(COLLIDE1), fnv1a_or1(COLLIDE2));
  assert_string_not_equal(COLLIDE1, COLLIDE2);
  lp_tasks_init(&r, 3);
  /* Three heavy tasks fill the kept set (walls 1000, 1001, 1002). */
  for (i = 0; i < 3; i++) {
    k[i] = new_task(&r, "heavy", "h", 0);
    set_totals(k[i], 1000 + (uint64_t)i, 0, 2000);
    assert_int_equal(lp_tasks_unref(&r, k[i]), 0);
  }
  /* Light tasks alternating between the two names, then a third name:
   *   t0 C1 (1, 2) first 10 last 20    t1 C2 (3, 4) first 11 last 30
   *   t2 C1 (5, 6) first 12 last 40    t3 C2 (7, 8) first 13 last 50
   *   t4 "h" (9, 0) first 14 last 60 */
  for (i = 0; i < 5; i++) {
    t[i] = new_task(&r, "light", i == 4 ? "h" : i % 2 ? COLLIDE2 : COLLIDE1,
                    10 + (uint64_t)i);
    set_totals(t[i], 2 * (uint64_t)i + 1, i == 4 ? 0 : 2 * (uint64_t)i + 2,
               20 + 10 * (uint64_t)i);
    assert_int_equal(lp_tasks_unref(&r, t[i]), 0);
  }
  collect(&r, &s);
  assert_int_equal(NKEPT(&s), 3);
  assert_int_equal(NFOLDS(&s), 3);
  /* C1: t0 + t2; C2: t1 + t3: separate, though their hashes are equal. */
  ASSERT_REC(fold_of(&s, COLLIDE1), 1 + 5, 2 + 6, 10, 40, 2);
  ASSERT_REC(fold_of(&s, COLLIDE2), 3 + 7, 4 + 8, 11, 50, 2);
  ASSERT_REC(fold_of(&s, "h"), 9, 0, 14, 60, 1);
  assert_string_equal(fold_of(&s, COLLIDE1)->name, COLLIDE1);
  assert_string_equal(fold_of(&s, COLLIDE2)->name, COLLIDE2);
  /* After a clear the folds start over, C2's first this time (so the
   * chain holds the two the other way round). */
  lp_tasks_clear(&r);
  for (i = 0; i < 3; i++) {
    k[i] = new_task(&r, "heavy", "h", 0);
    set_totals(k[i], 1000 + (uint64_t)i, 0, 2000);
    assert_int_equal(lp_tasks_unref(&r, k[i]), 0);
  }
  /*   t0 C2 (1, 0) first 100 last 150   t1 C1 (2, 0) first 101 last 151
   *   t2 C2 (3, 0) first 102 last 152   t3 C1 (4, 0) first 103 last 153 */
  for (i = 0; i < 4; i++) {
    t[i] = new_task(&r, "z", i % 2 ? COLLIDE1 : COLLIDE2, 100 + (uint64_t)i);
    set_totals(t[i], (uint64_t)i + 1, 0, 150 + (uint64_t)i);
    assert_int_equal(lp_tasks_unref(&r, t[i]), 0);
  }
  collect(&r, &s);
  assert_int_equal(NKEPT(&s), 3);
  assert_int_equal(NFOLDS(&s), 2);
  assert_string_equal(s.rec[3]->coro, COLLIDE2); /* in order of creation */
  assert_string_equal(s.rec[4]->coro, COLLIDE1);
  ASSERT_REC(fold_of(&s, COLLIDE2), 1 + 3, 0, 100, 152, 2);
  ASSERT_REC(fold_of(&s, COLLIDE1), 2 + 4, 0, 101, 153, 2);
  free(s.rec);
  lp_tasks_close(&r);
}

static void test_many_tasks_bounded(void **state) {
  enum { N = 100000, WINDOW = 20, NAMES = 5 };
  static const char *coros[NAMES] = {"main", "fetch", "Worker.run",
                                     "handler", "<lambda>"};
  lp_tasks_t r;
  lp_task_t **live = calloc(WINDOW, sizeof(*live));
  mtask_t *m = calloc(N, sizeof(*m));
  size_t i, nlive = 0, most = 0;
  (void)state;
  assert_non_null(live);
  assert_non_null(m);
  lp_tasks_init(&r, 0); /* LP_TASKS_KEEP = 1000 */
  /* Task i: coroutine coros[i % 5], created at i, wall w = 1 + (7919 i)
   * mod 100003 (distinct: 7919 is prime to the prime 100003, and i <
   * 100003), time w / 3, await the rest, last i + w. At most WINDOW live;
   * the oldest live one retires when a new one comes. */
  for (i = 0; i < N; i++) {
    uint64_t w = 1 + (uint64_t)(7919 * i % 100003);
    lp_task_t *t = new_task(&r, "task", coros[i % NAMES], i);
    mtask_t mt = {i + 1, "task", coros[i % NAMES], w / 3, w - w / 3, i,
                  i + w, 0, M_RETIRED};
    set_totals(t, w / 3, w - w / 3, i + w);
    m[i] = mt;
    if (nlive == WINDOW) {
      assert_int_equal(lp_tasks_unref(&r, live[i % WINDOW]), 0);
      nlive--;
    }
    live[i % WINDOW] = t;
    nlive++;
    if (i % 997 == 0) {
      size_t n = count_records(&r);
      most = n > most ? n : most;
      assert_true(n <= LP_TASKS_KEEP + nlive + NAMES);
    }
  }
  /* The last WINDOW are still live; a model check of everything. */
  for (i = N - WINDOW; i < N; i++) {
    m[i].state = M_LIVE;
    m[i].refs = 1;
  }
  model_check(&r, m, N, LP_TASKS_KEEP);
  assert_int_equal(count_records(&r), LP_TASKS_KEEP + WINDOW + NAMES);
  assert_true(most <= LP_TASKS_KEEP + WINDOW + NAMES);
  for (i = 0; i < WINDOW; i++)
    assert_int_equal(lp_tasks_unref(&r, live[i]), 0);
  for (i = N - WINDOW; i < N; i++) {
    m[i].state = M_RETIRED;
    m[i].refs = 0;
  }
  model_check(&r, m, N, LP_TASKS_KEEP);
  assert_int_equal(count_records(&r), LP_TASKS_KEEP + NAMES);
  lp_tasks_close(&r);
  free(live);
  free(m);
}

static void test_clear(void **state) {
  lp_tasks_t r;
  lp_task_t *a, *b, *t;
  seen_t s = {0};
  int i;
  (void)state;
  lp_tasks_init(&r, 3);
  a = new_task(&r, "A", "main", 5);
  b = new_task(&r, "B", "loop", 6);
  set_totals(a, 40, 60, 200);
  set_totals(b, 1, 2, 9);
  b->refs++; /* a frame references B */
  /* Five retired: three kept, two folded into "w". */
  for (i = 0; i < 5; i++) {
    t = new_task(&r, "w", "w", 10);
    set_totals(t, 100 - (uint64_t)i, 0, 300);
    assert_int_equal(lp_tasks_unref(&r, t), 0);
  }
  collect(&r, &s);
  assert_int_equal(s.n, 2 + 3 + 1);
  lp_test_alloc_count();
  lp_tasks_clear(&r);
  assert_int_equal(lp_test_alloc.allocs, 0); /* clearing never allocates */
  lp_test_alloc_reset();
  /* Live tasks stay, with their ids, names and references, their totals
   * zeroed; retired ones and folds are gone. */
  collect(&r, &s);
  assert_int_equal(s.n, 2);
  assert_ptr_equal(by_id(&s, 1), a);
  assert_ptr_equal(by_id(&s, 2), b);
  assert_int_equal(a->time, 0);
  assert_int_equal(a->await, 0);
  assert_int_equal(b->time, 0);
  assert_int_equal(b->await, 0);
  assert_int_equal(a->refs, 1);
  assert_int_equal(b->refs, 2);
  assert_string_equal(a->name, "A");
  assert_string_equal(b->coro, "loop");
  /* Ids go on (live ids 1 and 2 must stay unique); retirement starts over:
   * the kept set is empty again, and a fold of an old name starts from 0. */
  t = new_task(&r, "C", "w", 400);
  assert_int_equal(t->id, 8);
  set_totals(t, 3, 4, 410);
  assert_int_equal(lp_tasks_unref(&r, t), 0);
  collect(&r, &s);
  assert_int_equal(s.n, 3);
  ASSERT_REC(by_id(&s, 8), 3, 4, 400, 410, 0);
  for (i = 0; i < 3; i++) {
    t = new_task(&r, "D", "w", 500);
    set_totals(t, 1, (uint64_t)i, 500 + (uint64_t)i);
    assert_int_equal(lp_tasks_unref(&r, t), 0);
  }
  /* Walls 7, 1, 2, 3: the kept are 7, 3, 2; fold "w" = the 1. */
  collect(&r, &s);
  assert_int_equal(NKEPT(&s), 3);
  assert_int_equal(NFOLDS(&s), 1);
  ASSERT_REC(fold_of(&s, "w"), 1, 0, 500, 500, 1);
  ASSERT_REC(by_id(&s, 8), 3, 4, 400, 410, 0);
  ASSERT_REC(by_id(&s, 10), 1, 1, 500, 501, 0);
  ASSERT_REC(by_id(&s, 11), 1, 2, 500, 502, 0);
  /* Retiring a task live across the clear: its totals since the clear. */
  a->time = 8;
  assert_int_equal(lp_tasks_unref(&r, a), 0);
  collect(&r, &s);
  /* Wall 8 beats the lightest kept (2, task 10): 10 goes to "w". */
  ASSERT_REC(by_id(&s, 1), 8, 0, 5, 200, 0);
  assert_null(by_id(&s, 10));
  ASSERT_REC(fold_of(&s, "w"), 2, 1, 500, 501, 2);
  free(s.rec);
  lp_tasks_close(&r);
}

static void test_oom_new(void **state) {
  lp_tasks_t r;
  lp_task_t *t, *sentinel = (lp_task_t *)&r;
  long k;
  int rc, i;
  (void)state;
  lp_tasks_init(&r, 3);
  /* Fail each allocation of lp_tasks_new in turn: LP_ENOMEM, *out
   * untouched, nothing created, no id used up. */
  for (k = 0;; k++) {
    t = sentinel;
    lp_test_alloc_fail_at(k);
    rc = lp_tasks_new(&r, "Task-1", "main", 7, &t);
    lp_test_alloc_reset();
    if (rc == 0)
      break;
    assert_int_equal(rc, LP_ENOMEM);
    assert_ptr_equal(t, sentinel);
    assert_int_equal(count_records(&r), 0);
    assert_true(k < 10);
  }
  assert_true(k >= 2); /* the live list, then the record with its names */
  assert_int_equal(t->id, 1);
  assert_string_equal(t->name, "Task-1");
  assert_string_equal(t->coro, "main");
  /* Every allocation failing, with the live list full (64 and 128 are
   * likely growth points; try all sizes up to 130). */
  for (i = 2; i <= 130; i++) {
    lp_test_alloc_fail_from(0);
    t = sentinel;
    rc = lp_tasks_new(&r, "T", "main", 8, &t);
    lp_test_alloc_reset();
    assert_int_equal(rc, LP_ENOMEM);
    assert_ptr_equal(t, sentinel);
    assert_int_equal(count_records(&r), (size_t)i - 1);
    t = new_task(&r, "T", "main", 8);
    assert_int_equal(t->id, (uint64_t)i);
  }
  lp_tasks_close(&r);
}

/* Builds a registry (keep 3) with three retired tasks kept whole:
 * coroutine "x", walls 100, 200, 300 (time only), first 1, 2, 3, last
 * 101, 202, 303; and a live task 4, coroutine "y", time w4, first 4,
 * last 404. */
static lp_task_t *three_kept(lp_tasks_t *r, uint64_t w4) {
  lp_task_t *t;
  uint64_t i;
  lp_tasks_init(r, 3);
  for (i = 1; i <= 3; i++) {
    t = new_task(r, "k", "x", i);
    set_totals(t, 100 * i, 0, 101 * i);
    assert_int_equal(lp_tasks_unref(r, t), 0);
  }
  t = new_task(r, "n", "y", 4);
  set_totals(t, w4 - 4, 4, 404);
  return t;
}

static void test_oom_fold(void **state) {
  lp_tasks_t r;
  lp_task_t *t;
  seen_t s = {0};
  long k;
  int rc, variant;
  (void)state;
  /* Variant 0: task 4 is heavier than every kept one (wall 400): the
   * victim is task 1 (wall 100) -> fold "x". Variant 1: task 4 is the
   * lightest (wall 50): the victim is task 4 itself -> fold "y". Each
   * allocation of the fold fails in turn: LP_ENOMEM, and the victim is kept
   * whole (four kept, no fold). */
  for (variant = 0; variant < 2; variant++) {
    uint64_t w4 = variant == 0 ? 400 : 50;
    for (k = 0;; k++) {
      t = three_kept(&r, w4);
      lp_test_alloc_fail_at(k);
      rc = lp_tasks_unref(&r, t);
      lp_test_alloc_reset();
      collect(&r, &s);
      if (rc == 0) {
        /* Enough memory: three kept, one fold of one task. */
        assert_int_equal(NKEPT(&s), 3);
        assert_int_equal(NFOLDS(&s), 1);
        if (variant == 0) {
          assert_null(by_id(&s, 1));
          ASSERT_REC(by_id(&s, 4), 396, 4, 4, 404, 0);
          ASSERT_REC(fold_of(&s, "x"), 100, 0, 1, 101, 1);
        } else {
          assert_null(by_id(&s, 4));
          ASSERT_REC(by_id(&s, 1), 100, 0, 1, 101, 0);
          ASSERT_REC(fold_of(&s, "y"), 46, 4, 4, 404, 1);
        }
        lp_tasks_close(&r);
        break;
      }
      assert_int_equal(rc, LP_ENOMEM);
      assert_true(k < 10);
      assert_int_equal(s.n, 4);
      assert_int_equal(NKEPT(&s), 4);
      ASSERT_REC(by_id(&s, 1), 100, 0, 1, 101, 0);
      ASSERT_REC(by_id(&s, 2), 200, 0, 2, 202, 0);
      ASSERT_REC(by_id(&s, 3), 300, 0, 3, 303, 0);
      ASSERT_REC(by_id(&s, 4), w4 - 4, 4, 4, 404, 0);
      assert_string_equal(by_id(&s, 4)->coro, "y");
      /* With memory back, the next retirement folds the lightest of the
       * kept and the new one: task 5 ("x", wall 150). Lightest of {100,
       * 200, 300, w4, 150}: 50 (task 4) or 100 (task 1). */
      t = new_task(&r, "m", "x", 5);
      set_totals(t, 150, 0, 505);
      assert_int_equal(lp_tasks_unref(&r, t), 0);
      collect(&r, &s);
      assert_int_equal(NFOLDS(&s), 1);
      assert_int_equal(NKEPT(&s), 4);
      ASSERT_REC(by_id(&s, 5), 150, 0, 5, 505, 0);
      if (variant == 0)
        ASSERT_REC(fold_of(&s, "x"), 100, 0, 1, 101, 1);
      else
        ASSERT_REC(fold_of(&s, "y"), 46, 4, 4, 404, 1);
      lp_tasks_close(&r);
    }
    assert_true(k >= 3); /* the fold record and its two names at least */
  }

  /* Folding into an existing fold allocates nothing: it succeeds with
   * every allocation failing. */
  t = three_kept(&r, 400); /* 4 kept, 1 folded into "x" */
  assert_int_equal(lp_tasks_unref(&r, t), 0);
  t = new_task(&r, "o", "x", 6);
  set_totals(t, 7, 0, 606);
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_tasks_unref(&r, t), 0);
  lp_test_alloc_reset();
  collect(&r, &s);
  assert_int_equal(NKEPT(&s), 3);
  ASSERT_REC(fold_of(&s, "x"), 107, 0, 1, 606, 2);
  free(s.rec);
  lp_tasks_close(&r);
}

/* A record's names live in its own allocation until a rename gives name
 * one of its own: renames, a failed rename, retirement and close free each
 * exactly once (ASan in CI). */
static void test_rename(void **state) {
  lp_tasks_t r;
  lp_task_t *t;
  (void)state;
  lp_tasks_init(&r, 3);
  t = new_task(&r, "Task-1", "main", 1);
  assert_int_equal(lp_task_rename(&r, t, "Task-1"), 0);
  assert_int_equal(lp_task_rename(&r, t, "a name longer than the first"), 0);
  assert_string_equal(t->name, "a name longer than the first");
  assert_string_equal(t->coro, "main");
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_task_rename(&r, t, "y"), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_string_equal(t->name, "a name longer than the first");
  assert_int_equal(lp_task_rename(&r, t, "x"), 0);
  assert_string_equal(t->name, "x");
  assert_int_equal(lp_tasks_unref(&r, t), 0); /* kept whole */
  t = new_task(&r, "Task-2", "main", 2);
  assert_int_equal(lp_task_rename(&r, t, "z"), 0);
  lp_tasks_close(&r); /* one live, one kept */
}

int main(void) {
#define T(name) cmocka_unit_test_teardown(name, lp_test_teardown_alloc)
  const struct CMUnitTest tests[] = {
      T(test_init_empty),
      T(test_new_ids_names),
      T(test_refs_delay_retirement),
      T(test_fold_lightest),
      T(test_live_removal_keeps_slots),
      T(test_model_small),
      T(test_many_names),
      T(test_name_hash_collision),
      T(test_many_tasks_bounded),
      T(test_clear),
      T(test_oom_new),
      T(test_oom_fold),
      T(test_rename),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
