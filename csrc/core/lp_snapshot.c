#include "lp_snapshot.h"

#include <sched.h>
#include <string.h>

#include "lp_alloc.h"
#include "lp_error.h"

/* The optimistic copy reads words the writer may be changing; a copy made
 * while the sequence number moved is thrown away (lp_sync.h). ThreadSanitizer
 * would report those benign races, so the copy is not instrumented: the
 * mutex, the sequence number and everything else still are. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LP_NO_TSAN __attribute__((no_sanitize("thread")))
#endif
#endif
#if !defined(LP_NO_TSAN) && defined(__SANITIZE_THREAD__)
#define LP_NO_TSAN __attribute__((no_sanitize_thread))
#endif
#ifndef LP_NO_TSAN
#define LP_NO_TSAN
#endif

void lp_snapshot_close(lp_snapshot_t *s) {
  lp_table_close(&s->table);
  lp__free(s->tasks);
  lp__free(s->names);
  lp__free(s->now);
  memset(s, 0, sizeof(*s));
  lp_table_init(&s->table);
}

/* ---- the copy (mutex held, sequence number even when it began) ---- */

/* Element-wise copies: memcpy is intercepted by ThreadSanitizer. */
LP_NO_TSAN static void copy_lines(lp_line_t *dst, const lp_line_t *src,
                                  uint32_t n) {
  uint32_t i;
  for (i = 0; i < n; i++)
    dst[i] = src[i];
}

LP_NO_TSAN static size_t str_len(const char *s) {
  size_t n = 0;
  while (s[n])
    n++;
  return n;
}

LP_NO_TSAN static int copy_table(lp_table_t *dst, const lp_table_t *src) {
  uint32_t i, n = src->nfuncs;
  for (i = 0; i < n; i++) {
    const lp_func_t *f = src->funcs[i];
    lp_func_t *c;
    uint32_t nl = f->nlines;
    int err = lp_table_add(dst, 0, f->file, f->name, f->firstlineno, f->base,
                           f->base + (int32_t)nl - 1, f->kind, &c);
    if (err)
      return err;
    copy_lines(c->lines, f->lines, nl);
  }
  return 0;
}

typedef struct {
  lp_snapshot_t *s;
  size_t names_len, names_cap;
} task_copy_t;

/* Appends a string to the name arena; returns its offset (the arena may
 * move until the copy is complete), or SIZE_MAX when out of memory. */
LP_NO_TSAN static size_t arena_add(task_copy_t *tc, const char *str) {
  size_t n = str_len(str) + 1, at = tc->names_len, i;
  if (tc->names_len + n > tc->names_cap) {
    size_t cap = tc->names_cap ? tc->names_cap * 2 : 4096;
    char *nb;
    while (cap < tc->names_len + n)
      cap *= 2;
    if ((nb = lp__realloc(tc->s->names, cap)) == NULL)
      return SIZE_MAX;
    tc->s->names = nb;
    tc->names_cap = cap;
  }
  for (i = 0; i < n; i++)
    tc->s->names[at + i] = str[i];
  tc->names_len += n;
  return at;
}

LP_NO_TSAN static int copy_task(task_copy_t *tc, const lp_task_t *k) {
  lp_task_t *c = &tc->s->tasks[tc->s->ntasks];
  size_t name, coro;
  /* Field by field: a struct copy may become a memcpy call, which
   * ThreadSanitizer intercepts even here. */
  c->id = k->id;
  c->time = k->time;
  c->await = k->await;
  c->first = k->first;
  c->last = k->last;
  c->folded = k->folded;
  c->mark = k->mark;
  c->running = k->running;
  c->parked = k->parked;
  c->refs = k->refs;
  c->slot = k->slot;
  c->next = NULL;
  if ((name = arena_add(tc, k->name)) == SIZE_MAX ||
      (coro = arena_add(tc, k->coro)) == SIZE_MAX)
    return LP_ENOMEM;
  /* Offsets for now; made pointers once the arena stops moving. */
  c->name = (char *)(uintptr_t)name;
  c->coro = (char *)(uintptr_t)coro;
  tc->s->ntasks++;
  return 0;
}

LP_NO_TSAN static int copy_tasks(lp_snapshot_t *s, const lp_tasks_t *r) {
  task_copy_t tc;
  uint32_t i, n = r->nlive + r->nkept + r->nfolds;
  int err = 0;
  memset(&tc, 0, sizeof(tc));
  tc.s = s;
  if (n == 0)
    return 0;
  if ((s->tasks = lp__calloc(n, sizeof(*s->tasks))) == NULL)
    return LP_ENOMEM;
  for (i = 0; i < r->nlive && !err; i++)
    err = copy_task(&tc, r->live[i]);
  for (i = 0; i < r->nkept && !err; i++)
    err = copy_task(&tc, r->kept[i]);
  for (i = 0; i < r->nfolds && !err; i++)
    err = copy_task(&tc, r->fold_list[i]);
  return err;
}

/* Frames are grabbed as plain values while the writer may run, and only
 * looked into (their func and task pointers followed) once the copy is
 * known to be consistent: a slot read in the middle of a change may hold
 * anything, even memory never written. */
typedef struct {
  uint64_t id;
  uint32_t start, depth; /* its frames: frames[start, start + depth) */
} grab_thread_t;

typedef struct {
  lp_frame_t *frames;      /* every thread's stack, then the parked pool */
  uint32_t nframes, npool; /* the pool is the last npool frames */
  grab_thread_t *threads;
  uint32_t nthreads;
  uint32_t nlive;          /* live tasks: the first nlive of s->tasks */
} grab_t;

static void grab_close(grab_t *g) {
  lp__free(g->frames);
  lp__free(g->threads);
  memset(g, 0, sizeof(*g));
}

LP_NO_TSAN static void copy_frame(lp_frame_t *d, const lp_frame_t *f) {
  d->func = f->func;
  d->ident = f->ident;
  d->user = f->user;
  d->mark = f->mark;
  d->stretch = f->stretch;
  d->lineno = f->lineno;
  d->state = f->state;
  d->task = f->task;
  d->paused = f->paused;
}

LP_NO_TSAN static int grab_frames(grab_t *g, lp_engine_t *e) {
  const lp_thread_t *th;
  uint32_t i, j, n = 0, total, npool = e->pool_len;
  for (th = e->threads; th != NULL; th = th->next)
    n++;
  if (n > 0 && (g->threads = lp__calloc(n, sizeof(*g->threads))) == NULL)
    return LP_ENOMEM;
  total = npool;
  for (th = e->threads, i = 0; th != NULL && i < n; th = th->next, i++) {
    g->threads[i].id = th->id;
    g->threads[i].depth = th->depth; /* <= its capacity, whatever the race */
    g->threads[i].start = total;
    total += g->threads[i].depth;
  }
  g->nthreads = i;
  if (total > 0 && (g->frames = lp__calloc(total, sizeof(*g->frames))) == NULL)
    return LP_ENOMEM;
  for (th = e->threads, i = 0; th != NULL && i < g->nthreads; th = th->next, i++)
    for (j = 0; j < g->threads[i].depth; j++)
      copy_frame(&g->frames[g->threads[i].start + j], &th->stack[j]);
  for (j = 0; j < npool; j++)
    copy_frame(&g->frames[j], &e->pool[j]);
  g->npool = npool;
  g->nframes = total;
  return 0;
}

/* Open time of a running or suspended frame, as lp_engine_settle counts
 * it, added to the copy of its line. */
static void settle_frame(lp_snapshot_t *s, const lp_frame_t *fr, uint64_t t,
                         int running) {
  lp_line_t *ln;
  if (fr->func == NULL || fr->lineno == 0 ||
      fr->func->index >= s->table.nfuncs ||
      (ln = lp_func_line(s->table.funcs[fr->func->index], fr->lineno)) == NULL)
    return;
  if (t < fr->mark) /* stretch <= mark: nothing open */
    return;
  if (running)
    lp__line_run(ln, fr, t);
  else
    ln->await += t - fr->mark;
}

/* The copy is consistent and the mutex still held: func and task pointers
 * are valid. Settles lines and live tasks at t and fills s->now. */
static int settle(lp_snapshot_t *s, const grab_t *g, uint64_t t) {
  uint32_t i, j;
  if (g->nthreads > 0 &&
      (s->now = lp__calloc(g->nthreads, sizeof(*s->now))) == NULL)
    return LP_ENOMEM;
  for (i = 0; i < g->nthreads; i++) {
    const lp_frame_t *st = &g->frames[g->threads[i].start], *top = NULL;
    for (j = 0; j < g->threads[i].depth; j++) {
      settle_frame(s, &st[j], t, 1);
      if (st[j].lineno != 0)
        top = &st[j]; /* the innermost frame that is on a line */
    }
    if (top != NULL && top->func->index < s->table.nfuncs) {
      lp_now_t *n = &s->now[s->nnow++];
      n->thread = g->threads[i].id;
      n->task = top->task != NULL ? top->task->id : 0;
      n->elapsed = t > top->stretch ? t - top->stretch : 0;
      n->func = top->func->index;
      n->lineno = top->lineno;
    }
  }
  for (j = 0; j < g->npool; j++)
    settle_frame(s, &g->frames[j], t, 0);
  /* Live tasks come first: their open time. */
  for (i = 0; i < g->nlive && i < s->ntasks; i++)
    if (t >= s->tasks[i].mark)
      lp_task_account(&s->tasks[i], t);
  return 0;
}

/* One attempt at the racy part of the copy. */
static int copy_all(lp_snapshot_t *s, grab_t *g, lp_engine_t *e) {
  int err;
  g->nlive = e->tasks.nlive;
  if ((err = copy_table(&s->table, &e->table)) != 0 ||
      (err = copy_tasks(s, &e->tasks)) != 0 ||
      (err = grab_frames(g, e)) != 0)
    return err;
  return 0;
}

static void discard(lp_snapshot_t *s) {
  uint32_t attempts = s->attempts, paused = s->paused;
  lp_snapshot_close(s);
  s->attempts = attempts;
  s->paused = paused;
}

static void set_pause(lp_sync_t *y, int on) {
  __atomic_store_n(&y->pause, on, __ATOMIC_RELAXED);
  if (!on)
    uv_cond_broadcast(&y->cond);
}

int lp_snapshot_take(lp_engine_t *e, lp_snapshot_t *s) {
  lp_sync_t *y = &e->sync;
  uint64_t start = lp_engine_now(e);
  int err = LP_EBUSY;
  uint32_t tries;
  memset(s, 0, sizeof(*s));
  lp_table_init(&s->table);
  for (tries = 1;; tries++) {
    uint64_t s1, s2, t;
    uv_mutex_lock(&y->mutex);
    s1 = __atomic_load_n(&y->seq, __ATOMIC_ACQUIRE);
    if ((s1 & 1) == 0) {
      grab_t g;
      memset(&g, 0, sizeof(g));
      s->attempts++;
      t = lp_engine_now(e);
      err = copy_all(s, &g, e);
      __atomic_thread_fence(__ATOMIC_ACQUIRE);
      s2 = __atomic_load_n(&y->seq, __ATOMIC_RELAXED);
      if (err == 0 && s1 == s2)
        err = settle(s, &g, t);
      grab_close(&g);
      if (err == 0 && s1 == s2) {
        s->t = t;
        for (uint32_t i = 0; i < s->ntasks; i++) {
          s->tasks[i].name = s->names + (uintptr_t)s->tasks[i].name;
          s->tasks[i].coro = s->names + (uintptr_t)s->tasks[i].coro;
        }
        if (s->paused)
          set_pause(y, 0);
        uv_mutex_unlock(&y->mutex);
        return 0;
      }
      discard(s);
      if (err != 0)
        goto give_up;
      err = LP_EBUSY;
    }
    /* The writer is busy: after a few tries, ask it to wait for us at the
     * end of its current change. */
    if (tries >= 3 && !s->paused) {
      set_pause(y, 1);
      s->paused = 1;
    }
    if (lp_engine_now(e) - start > LP_SNAPSHOT_DEADLINE_NS)
      goto give_up;
    uv_mutex_unlock(&y->mutex);
    /* Paused, the writer stops at the end of its current change: usually
     * microseconds away, so yield rather than sleep. */
    if (tries < 3 || (s->paused && tries < 1000))
      sched_yield();
    else
      uv_sleep(1);
  }
give_up:
  if (s->paused)
    set_pause(y, 0);
  uv_mutex_unlock(&y->mutex);
  discard(s);
  return err;
}

/* ---- encoding ---- */

int lp_snapshot_encode(const lp_snapshot_t *s, const lp_meta_t *meta,
                       uint64_t t0, lp_buf_t *buf) {
  lp_file_parts_t parts;
  memset(&parts, 0, sizeof(parts));
  parts.table = &s->table;
  parts.meta = meta;
  parts.task_list = s->tasks;
  parts.ntasks = s->ntasks;
  parts.now = s->now;
  parts.nnow = s->nnow;
  parts.with_now = 1;
  parts.t0 = t0;
  return lp_file_encode_parts(&parts, buf);
}
