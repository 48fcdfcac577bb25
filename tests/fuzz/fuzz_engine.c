/* fuzz_engine.c - libFuzzer target for the engine's event handling.
 *
 * The input is read as a program: each byte picks an engine call (thread
 * creation, function registration, start, line, yield, resume, return,
 * unwind, drop, settle, detach, tasks and their deaths, clock steps, an
 * allocation failure armed for one of the next calls...) and the bytes after
 * it give that call's arguments. Only what the headers allow is called: the
 * time is the injectable clock's, which never goes back; lines are >= 1;
 * lp_engine_set_task is called only right after a start or an adoption;
 * a task object dies once; user values are set, as lp__watch_gen does, only
 * on a frame that has none.
 *
 * A shadow model (stack depths, parked keys, hits per line, task objects,
 * user values) predicts every return value, and after each call the
 * engine's state is checked against the invariants the headers state:
 * every frame's function is registered and its line in range; the parked
 * map, pool, free list and nparked agree; each task's running, parked and
 * refs counts equal the frames that reference it; time + await of a task
 * never exceed its life; hits are exact; line times and await times only
 * grow and never exceed the time frames spent running or parked; every user
 * value is handed back exactly once (each is a malloc'd token, freed when
 * the engine returns it, so LeakSanitizer and ASan see a lost or doubled
 * one). Any violation traps. At the end everything is released. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_alloc.h"
#include "lp_engine.h"
#include "lp_error.h"

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond))                                                             \
      __builtin_trap();                                                      \
  } while (0)

enum {
  MAX_THREADS = 4,
  MAX_FUNCS = 8,
  MAX_LINE = 512,   /* lines the fuzzer uses: 1 .. MAX_LINE - 1 */
  MAX_KEY = 16,     /* parking keys: 1 .. MAX_KEY - 1 (0 is invalid) */
  MAX_OBJS = 16,    /* living task objects */
  BAD_LINE = 20000000 /* over the 10-million-line range: LP_EINVAL */
};

/* ---- input ---- */

typedef struct {
  const uint8_t *p;
  size_t left;
} input_t;

static uint8_t byte(input_t *in) {
  if (in->left == 0)
    return 0;
  in->left--;
  return *in->p++;
}

/* ---- clock ---- */

static uint64_t now;

static uint64_t fuzz_clock(void *arg) {
  (void)arg;
  return now;
}

/* ---- allocator: fails one chosen allocating call ---- */

static long allocs;
static long fail_at = -1; /* refuse allocating calls fail_at ..          */
static long fail_n;       /* .. fail_at + fail_n - 1 (counted from the arm) */
static long failed;       /* allocations refused so far in this input */

static void *fuzz_realloc(void *ptr, size_t size) {
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  if (fail_at >= 0 && allocs++ >= fail_at) {
    if (allocs >= fail_at + fail_n)
      fail_at = -1;
    failed++;
    return NULL;
  }
  return realloc(ptr, size);
}

/* ---- the shadow model ---- */

static struct {
  lp_engine_t e;
  lp_thread_t *threads[MAX_THREADS];
  uint32_t depth[MAX_THREADS];
  uint32_t nthreads;
  lp_func_t *funcs[MAX_FUNCS]; /* as returned by lp_table_add */
  uint32_t nfuncs;
  uint64_t hits[MAX_FUNCS][MAX_LINE]; /* by table index and line */
  uint64_t time[MAX_FUNCS][MAX_LINE]; /* last seen, to check growth */
  uint64_t await[MAX_FUNCS][MAX_LINE];
  uint8_t parked[MAX_KEY];
  lp_task_t *objs[MAX_OBJS]; /* tasks whose object lives (holds a ref) */
  uint32_t nobjs;
  uint64_t t0;         /* start, for Max */
  uint64_t run_budget; /* sum over clock steps of delta x running frames */
  uint64_t park_budget; /* ... x parked frames */
  long tokens;         /* user values handed to the engine, not yet back */
  uint32_t next_name;
} S;

/* A user value: a heap token, freed when the engine hands it back. */
static uintptr_t token_new(void) {
  void *p = malloc(1);
  CHECK(p != NULL);
  S.tokens++;
  return (uintptr_t)p;
}

static void token_back(uintptr_t user) {
  if (user != 0) {
    free((void *)user);
    S.tokens--;
  }
}

static int table_index(const lp_func_t *f) {
  uint32_t i;
  for (i = 0; i < S.e.table.nfuncs; i++)
    if (S.e.table.funcs[i] == f)
      return (int)i;
  return -1;
}

static int is_live_task(const lp_task_t *k) {
  uint32_t i;
  for (i = 0; i < S.e.tasks.nlive; i++)
    if (S.e.tasks.live[i] == k)
      return 1;
  return 0;
}

/* Counts of the frames referencing task k. */
typedef struct {
  uint32_t running, parked, paused, refs;
} frame_refs_t;

static frame_refs_t frames_of(const lp_task_t *k) {
  frame_refs_t c = {0, 0, 0, 0};
  lp_thread_t *th;
  uint32_t i;
  for (th = S.e.threads; th != NULL; th = th->next) {
    for (i = 0; i < th->depth; i++) {
      if (th->stack[i].task == k)
        c.running++;
      if (th->stack[i].paused == k)
        c.paused++;
    }
  }
  for (i = 0; i < S.e.pool_len; i++)
    if (S.e.pool[i].func != NULL && S.e.pool[i].task == k)
      c.parked++;
  c.refs = c.running + c.parked;
  return c;
}

static int obj_alive(const lp_task_t *k) {
  uint32_t i;
  for (i = 0; i < S.nobjs; i++)
    if (S.objs[i] == k)
      return 1;
  return 0;
}

static uint64_t wall(const lp_task_t *k) { return k->time + k->await; }

static void check_frame(const lp_frame_t *fr, uint32_t state) {
  CHECK(fr->state == state);
  CHECK(table_index(fr->func) >= 0); /* a registered, live function */
  CHECK(fr->lineno == 0 || lp_func_line(fr->func, fr->lineno) != NULL);
  CHECK(fr->mark <= now && fr->stretch <= fr->mark);
  CHECK(fr->task == NULL || is_live_task(fr->task));
  CHECK(fr->paused == NULL || is_live_task(fr->paused));
  CHECK(fr->paused == NULL || fr->paused != fr->task);
}

static void check_tasks(void) {
  const lp_tasks_t *r = &S.e.tasks;
  uint32_t i;
  for (i = 0; i < r->nlive; i++) {
    const lp_task_t *k = r->live[i];
    frame_refs_t c = frames_of(k);
    CHECK(k->slot == i && k->folded == 0 && k->id != 0);
    CHECK(k->first <= k->mark && k->mark <= now);
    CHECK(k->first <= k->last && k->last <= now);
    CHECK(wall(k) <= k->mark - k->first);
    CHECK(k->running == c.running - c.paused);
    CHECK(k->parked == c.parked + c.paused);
    CHECK(k->refs == c.refs + (uint32_t)obj_alive(k));
    CHECK(k->refs > 0);
  }
  for (i = 0; i < S.nobjs; i++)
    CHECK(is_live_task(S.objs[i]));
  /* "A fold that fails keeps the task whole, one over the bound." */
  CHECK(r->nkept <= r->keep + (uint32_t)failed);
  for (i = 0; i < r->nkept; i++) {
    const lp_task_t *k = r->kept[i];
    CHECK(k->slot == i && k->refs == 0 && k->folded == 0);
    CHECK(k->running == 0 && k->parked == 0);
    CHECK(k->first <= k->last && k->last <= now);
    CHECK(wall(k) <= k->last - k->first);
    CHECK(i == 0 || wall(r->kept[(i - 1) / 2]) <= wall(k)); /* min-heap */
  }
  for (i = 0; i < r->nfolds; i++) {
    const lp_task_t *f = r->fold_list[i];
    CHECK(f->folded >= 1 && f->id == 0 && f->first <= f->last);
    CHECK(f->last <= now);
  }
}

static void check_lines(void) {
  uint64_t time = 0, await = 0;
  uint32_t i, j;
  CHECK(S.e.table.nfuncs == S.nfuncs);
  for (i = 0; i < S.e.table.nfuncs; i++) {
    lp_func_t *f = S.e.table.funcs[i];
    CHECK(f->base >= 1 && f->nlines >= 1 && f->lines != NULL);
    for (j = 0; j < f->nlines; j++) {
      const lp_line_t *ln = &f->lines[j];
      int64_t lineno = (int64_t)f->base + j;
      time += ln->time;
      await += ln->await;
      CHECK(ln->max <= now - S.t0);
      if (lineno >= MAX_LINE) {
        CHECK(ln->hits == 0 && ln->time == 0 && ln->await == 0);
        continue;
      }
      CHECK(ln->hits == S.hits[i][lineno]);
      CHECK(ln->time >= S.time[i][lineno]);   /* only grows */
      CHECK(ln->await >= S.await[i][lineno]);
      S.time[i][lineno] = ln->time;
      S.await[i][lineno] = ln->await;
    }
  }
  /* Time goes to lines only while a frame runs, await while one is parked. */
  CHECK(time <= S.run_budget);
  CHECK(await <= S.park_budget);
}

static void check(void) {
  lp_thread_t *th;
  uint32_t i, nthreads = 0, nparked = 0, nfree = 0, k;
  long users = 0;
  for (i = 0; i < S.nthreads; i++)
    CHECK(S.threads[i]->depth == S.depth[i]);
  for (th = S.e.threads; th != NULL; th = th->next) {
    nthreads++;
    CHECK(th->depth <= th->cap);
    for (i = 0; i < th->depth; i++) {
      check_frame(&th->stack[i], LP_FRAME_RUNNING);
      users += th->stack[i].user != 0;
    }
  }
  CHECK(nthreads == S.nthreads);
  /* Parked frames: the pool's used slots, the map and nparked agree. */
  for (i = 0; i < S.e.pool_len; i++) {
    if (S.e.pool[i].func != NULL) {
      nparked++;
      check_frame(&S.e.pool[i], LP_FRAME_SUSPENDED);
      CHECK(S.e.pool[i].paused == NULL);
      users += S.e.pool[i].user != 0;
    }
  }
  CHECK(nparked == S.e.nparked && S.e.parked.count == S.e.nparked);
  for (k = S.e.pool_free; k != 0; k = (uint32_t)S.e.pool[k - 1].ident) {
    CHECK(k <= S.e.pool_len && S.e.pool[k - 1].func == NULL);
    CHECK(++nfree <= S.e.pool_len);
  }
  CHECK(nfree + nparked == S.e.pool_len);
  for (k = 0; k < MAX_KEY; k++) {
    uintptr_t v;
    int in = lp_map_get(&S.e.parked, k, &v);
    CHECK(in == S.parked[k]);
    if (in)
      CHECK(v < S.e.pool_len && S.e.pool[v].func != NULL);
  }
  CHECK(users == S.tokens); /* every user value is in the engine or back */
  check_tasks();
  check_lines();
}

/* ---- choosing arguments ---- */

static lp_thread_t *pick_thread(input_t *in, uint32_t *idx) {
  *idx = byte(in) % S.nthreads;
  return S.threads[*idx];
}

static lp_func_t *pick_func(input_t *in) {
  return S.funcs[byte(in) % S.nfuncs];
}

static uintptr_t pick_key(input_t *in) { return byte(in) % MAX_KEY; }

/* A line for lp_engine_line: 1 .. MAX_LINE - 1, or rarely one too far
 * from the function's range (LP_EINVAL, nothing allocated). */
static int32_t pick_line(input_t *in) {
  uint8_t b = byte(in);
  if (b == 0xFF)
    return BAD_LINE;
  return 1 + (int32_t)(((uint32_t)b << 1 | (byte(in) & 1)) % (MAX_LINE - 1));
}

static void shadow_hit(lp_func_t *f, int32_t lineno) {
  int i = table_index(f);
  CHECK(i >= 0 && lineno >= 1 && lineno < MAX_LINE);
  S.hits[i][lineno]++;
}

static int add_func(input_t *in) {
  static const char *const files[] = {"a.py", "b.py", "c.py"};
  char name[32];
  uint32_t n = S.e.table.nfuncs;
  uint8_t b = byte(in);
  int32_t first = 1 + (byte(in) % 64);
  int32_t last = first + (byte(in) % 64);
  uintptr_t key = (b & 8) ? 1 + (b & 7) : 0; /* 1..8: may exist already */
  lp_kind_t kind = (lp_kind_t)((b >> 4) & 3);
  lp_func_t *f = NULL;
  int err;
  if (S.nfuncs == MAX_FUNCS)
    return 0;
  snprintf(name, sizeof(name), "f%u", (unsigned)n);
  err = lp_table_add(&S.e.table, key, files[b % 3], name, first - (b >> 6),
                     first, last, kind, &f);
  CHECK(err == 0 || err == LP_ENOMEM);
  if (err != 0) {
    CHECK(S.e.table.nfuncs == n);
    return err;
  }
  if (S.e.table.nfuncs == n) { /* the key was known: the same function */
    CHECK(key != 0 && lp_table_find(&S.e.table, key) == f);
    return 0;
  }
  CHECK(S.e.table.nfuncs == n + 1 && S.e.table.funcs[n] == f);
  CHECK(f->base == first && f->nlines == (uint32_t)(last - first + 1));
  S.funcs[S.nfuncs++] = f;
  return 0;
}

/* Right after a start or an adoption on th at now: attribute the new top
 * frame to no task, the caller's task, a living task, or a new task. */
static void maybe_set_task(input_t *in, lp_thread_t *th) {
  uint8_t b = byte(in);
  lp_task_t *task = NULL;
  char name[32];
  switch (b % 4) {
  case 0:
    return;
  case 1:
    task = lp_engine_caller_task(th);
    break;
  case 2:
    if (S.nobjs > 0)
      task = S.objs[(b >> 2) % S.nobjs];
    break;
  case 3:
    if (S.nobjs == MAX_OBJS)
      return;
    snprintf(name, sizeof(name), "Task-%u", S.next_name++);
    if (lp_tasks_new(&S.e.tasks, name, (b & 4) ? "main" : "worker", now,
                     &task) != 0)
      return;
    S.objs[S.nobjs++] = task;
    break;
  }
  if (task != NULL) {
    uint32_t refs = task->refs;
    lp_engine_set_task(&S.e, th, task, now);
    CHECK(lp_engine_top(th)->task == task && task->refs == refs + 1);
  }
}

static void end_object(uint32_t i) {
  lp_task_t *k = S.objs[i];
  S.objs[i] = S.objs[--S.nobjs];
  lp_tasks_unref(&S.e.tasks, k); /* LP_ENOMEM: its totals are lost */
}

static void advance(uint64_t delta) {
  lp_thread_t *th;
  uint64_t running = 0;
  for (th = S.e.threads; th != NULL; th = th->next)
    running += th->depth;
  now += delta;
  S.run_budget += delta * running;
  S.park_budget += delta * S.e.nparked;
}

/* lp_engine_settle, then zero the counters, as the binding's clear() does. */
static void clear(void) {
  lp_engine_settle(&S.e, now);
  lp_table_clear(&S.e.table);
  lp_tasks_clear(&S.e.tasks);
  memset(S.hits, 0, sizeof(S.hits));
  memset(S.time, 0, sizeof(S.time));
  memset(S.await, 0, sizeof(S.await));
  S.run_budget = S.park_budget = 0;
}

/* ---- one step ---- */

enum {
  OP_THREAD, OP_FUNC, OP_START, OP_LINE, OP_LINE2, OP_YIELD, OP_RESUME,
  OP_RETURN, OP_UNWIND, OP_DROP, OP_SETTLE, OP_DETACH, OP_TASK, OP_TASK_END,
  OP_RENAME, OP_TICK, OP_TICK2, OP_WATCH, OP_FAIL, OP_CLEAR, OP_EACH_USER,
  OP_MAX
};

static const char *const op_names[OP_MAX] = {
    "thread", "func", "start", "line", "line", "yield", "resume",
    "return", "unwind", "drop", "settle", "detach", "task", "task_end",
    "rename", "tick", "tick2", "watch", "fail", "clear", "each_user"};

static int trace; /* LP_FUZZ_TRACE=1: print each step (to replay a crash) */

static void step(input_t *in) {
  uint8_t op = byte(in) % OP_MAX;
  lp_thread_t *th;
  lp_frame_t *top;
  uint32_t ti;
  uintptr_t key, user;
  int err;

  switch (op) {
  case OP_THREAD:
    if (S.nthreads < MAX_THREADS &&
        lp_engine_thread_new(&S.e, byte(in), &S.threads[S.nthreads]) == 0)
      S.depth[S.nthreads++] = 0;
    break;
  case OP_FUNC:
    add_func(in);
    break;
  case OP_START: {
    lp_func_t *f = pick_func(in);
    th = pick_thread(in, &ti);
    err = lp_engine_start(&S.e, th, f, byte(in), now);
    CHECK(err == 0 || err == LP_ENOMEM);
    if (err == 0) {
      S.depth[ti]++;
      CHECK(lp_engine_top(th)->func == f && lp_engine_top(th)->lineno == 0);
      maybe_set_task(in, th);
    }
    break;
  }
  case OP_LINE:
  case OP_LINE2: { /* twice as likely: line events are most events */
    int32_t lineno;
    th = pick_thread(in, &ti);
    lineno = pick_line(in);
    if ((top = lp_engine_top(th)) == NULL)
      break;
    err = lp_engine_line(&S.e, top, lineno, now);
    if (lineno == BAD_LINE) {
      CHECK(err == LP_EINVAL);
    } else {
      CHECK(err == 0 || err == LP_ENOMEM);
      if (err == 0) {
        shadow_hit(top->func, lineno);
        CHECK(top->lineno == lineno);
      }
    }
    break;
  }
  case OP_YIELD:
    th = pick_thread(in, &ti);
    key = pick_key(in);
    err = lp_engine_yield(&S.e, th, key, now, &user);
    if (S.depth[ti] == 0 || key == 0) {
      CHECK(err == LP_EINVAL && user == 0);
      break;
    }
    CHECK(err == 0 || err == LP_ENOMEM);
    S.depth[ti]--;
    S.parked[key] = err == 0;
    token_back(user);
    break;
  case OP_RESUME: {
    lp_func_t *f = pick_func(in);
    int32_t lineno;
    th = pick_thread(in, &ti);
    key = pick_key(in);
    lineno = (int32_t)(byte(in) % 8) - 1; /* -1 .. 6: 0 and below: none */
    err = lp_engine_resume(&S.e, th, key, f, byte(in), lineno, now);
    if (S.parked[key]) {
      CHECK(err == 1 || err == LP_ENOMEM);
      if (err == 1) {
        S.parked[key] = 0;
        S.depth[ti]++;
        CHECK(lp_engine_top(th)->mark == now);
      }
    } else {
      CHECK(err == 0 || err == LP_ENOMEM);
      if (err == 0) {
        S.depth[ti]++;
        top = lp_engine_top(th);
        CHECK(top->func == f && top->task == NULL);
        CHECK(top->lineno == 0 || top->lineno == lineno);
        maybe_set_task(in, th);
      }
    }
    break;
  }
  case OP_RETURN:
  case OP_UNWIND:
    th = pick_thread(in, &ti);
    user = op == OP_RETURN ? lp_engine_return(&S.e, th, now)
                           : lp_engine_unwind(&S.e, th, now);
    if (S.depth[ti] > 0)
      S.depth[ti]--;
    else
      CHECK(user == 0);
    token_back(user);
    break;
  case OP_DROP:
    key = pick_key(in);
    user = 0;
    err = lp_engine_drop(&S.e, key, now, &user);
    CHECK(err == S.parked[key]);
    S.parked[key] = 0;
    token_back(user);
    break;
  case OP_SETTLE:
    lp_engine_settle(&S.e, now);
    break;
  case OP_DETACH:
    lp_engine_detach(&S.e, now, token_back);
    memset(S.depth, 0, sizeof(S.depth));
    break;
  case OP_TASK: { /* a task object seen before any of its frames */
    char name[32];
    lp_task_t *k;
    if (S.nobjs == MAX_OBJS)
      break;
    snprintf(name, sizeof(name), "Task-%u", S.next_name++);
    if (lp_tasks_new(&S.e.tasks, name, "side", now, &k) == 0)
      S.objs[S.nobjs++] = k;
    break;
  }
  case OP_TASK_END:
    if (S.nobjs > 0)
      end_object(byte(in) % S.nobjs);
    break;
  case OP_RENAME:
    if (S.nobjs > 0) {
      lp_task_t *k = S.objs[byte(in) % S.nobjs];
      char *old = k->name;
      err = lp_task_rename(&S.e.tasks, k, (byte(in) & 1) ? "renamed" : "Task-x");
      CHECK(err == 0 || (err == LP_ENOMEM && k->name == old));
    }
    break;
  case OP_TICK: { /* small steps: 0 .. 255 ns */
    advance(byte(in));
    break;
  }
  case OP_TICK2: { /* large steps: up to about 2^36 ns (no overflow in 4096 steps) */
    uint8_t b = byte(in);
    advance(((uint64_t)1 << (b % 37)) + byte(in));
    break;
  }
  case OP_WATCH: /* as lp__watch_gen: a user value on a frame with none */
    th = pick_thread(in, &ti);
    if ((top = lp_engine_top(th)) != NULL && top->user == 0)
      top->user = token_new();
    break;
  case OP_FAIL: { /* one or a run of the next allocating calls fail */
    uint8_t b = byte(in);
    allocs = 0;
    fail_at = b % 4;
    fail_n = (b & 4) ? 3 : 1;
    break;
  }
  case OP_CLEAR:
    clear();
    break;
  case OP_EACH_USER:
    lp_engine_each_user(&S.e, token_back);
    break;
  }
  if (trace) {
    fprintf(stderr, "%-9s now=%llu depth=", op_names[op],
            (unsigned long long)now);
    for (ti = 0; ti < S.nthreads; ti++)
      fprintf(stderr, "%u%s", S.depth[ti], ti + 1 < S.nthreads ? "," : "");
    fprintf(stderr, " parked=%u live=%u kept=%u folds=%u failed=%ld\n",
            S.e.nparked, S.e.tasks.nlive, S.e.tasks.nkept, S.e.tasks.nfolds,
            failed);
  }
  check();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *tr = getenv("LP_FUZZ_TRACE");
  (void)argc;
  (void)argv;
  trace = tr != NULL && *tr != 0 && *tr != '0';
  lp_set_allocator(fuzz_realloc);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  input_t in = {data, size};
  uint32_t i, k;
  int steps = 0;

  memset(&S, 0, sizeof(S));
  fail_at = -1;
  failed = 0;
  now = S.t0 = 1000000;
  CHECK(lp_engine_init(&S.e, fuzz_clock, NULL) == 0);
  /* A small bound on kept tasks, so that retiring and folding happen (the
   * registry is still empty: nothing is kept yet). */
  S.e.tasks.keep = 1 + byte(&in) % 4;
  CHECK(lp_engine_thread_new(&S.e, 1, &S.threads[0]) == 0);
  S.nthreads = 1;
  while (S.nfuncs == 0)
    CHECK(add_func(&in) == 0);
  check();

  while (in.left > 0 && steps++ < 4096)
    step(&in);

  /* Release everything, as the binding does: running frames end, parked
   * frames are dropped, task objects die. Then nothing may be left. */
  fail_at = -1;
  lp_engine_detach(&S.e, now, token_back);
  memset(S.depth, 0, sizeof(S.depth));
  for (k = 0; k < MAX_KEY; k++) {
    uintptr_t user = 0;
    CHECK(lp_engine_drop(&S.e, k, now, &user) == S.parked[k]);
    S.parked[k] = 0;
    token_back(user);
  }
  while (S.nobjs > 0)
    end_object(S.nobjs - 1);
  check();
  CHECK(S.e.nparked == 0 && S.e.tasks.nlive == 0 && S.tokens == 0);
  for (i = 0; i < S.nthreads; i++)
    CHECK(S.threads[i]->depth == 0);
  lp_engine_each_user(&S.e, token_back);
  lp_engine_close(&S.e);
  lp_set_allocator(fuzz_realloc);
  return 0;
}
