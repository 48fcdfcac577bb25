#include "lp_engine.h"

#include <string.h>

#include "lp_alloc.h"
#include "lp_error.h"

int lp_engine_init(lp_engine_t *e, lp_clock_cb clock, void *clock_arg) {
  memset(e, 0, sizeof(*e));
  lp_table_init(&e->table);
  lp_tasks_init(&e->tasks, 0);
  lp_map_init(&e->parked);
  e->clock = clock;
  e->clock_arg = clock_arg;
  if (lp_sync_init(&e->sync) != 0)
    return LP_ENOMEM;
  e->table.sync = &e->sync;
  e->tasks.sync = &e->sync;
  return 0;
}

void lp_engine_close(lp_engine_t *e) {
  lp_thread_t *th, *next;
  for (th = e->threads; th != NULL; th = next) {
    next = th->next;
    lp__free(th->stack);
    lp__free(th);
  }
  lp__free(e->pool);
  lp_map_close(&e->parked);
  lp_tasks_close(&e->tasks);
  lp_table_close(&e->table);
  lp_sync_close(&e->sync);
  lp_engine_init(e, e->clock, e->clock_arg);
}

int lp_engine_thread_new(lp_engine_t *e, uint64_t id, lp_thread_t **out) {
  lp_thread_t *th = lp__calloc(1, sizeof(*th));
  if (th == NULL)
    return LP_ENOMEM;
  th->id = id;
  th->sync = &e->sync;
  lp__sync_lock(&e->sync);
  th->next = e->threads;
  e->threads = th;
  lp__sync_unlock(&e->sync);
  *out = th;
  return 0;
}

static int push(lp_thread_t *th, const lp_frame_t *fr) {
  if (th->depth == th->cap) {
    uint32_t cap = th->cap ? th->cap * 2 : 32;
    lp_frame_t *ns;
    lp__sync_lock(th->sync);
    ns = lp__realloc(th->stack, cap * sizeof(*ns));
    if (ns != NULL) {
      th->stack = ns;
      th->cap = cap;
    }
    lp__sync_unlock(th->sync);
    if (ns == NULL)
      return LP_ENOMEM;
  }
  th->stack[th->depth] = *fr;
  th->top = &th->stack[th->depth++];
  return 0;
}

static void pop(lp_thread_t *th) {
  th->top = --th->depth != 0 ? th->top - 1 : NULL;
}

/* A new running frame of func at t: no line, no task yet. */
static void frame_init(lp_frame_t *fr, lp_func_t *func, uintptr_t ident,
                       uint64_t t) {
  fr->func = func;
  fr->ident = ident;
  fr->user = 0;
  fr->mark = t;
  fr->stretch = t;
  fr->line = NULL;
  fr->lineno = 0;
  fr->state = LP_FRAME_RUNNING;
  fr->task = NULL;
  fr->paused = NULL;
}

int lp_engine_start(lp_engine_t *e, lp_thread_t *th, lp_func_t *func,
                    uintptr_t ident, uint64_t t) {
  lp_frame_t fr;
  (void)e;
  frame_init(&fr, func, ident, t);
  return push(th, &fr);
}

static void pause_caller(lp_thread_t *th, uint64_t t);

void lp_engine_set_task(lp_engine_t *e, lp_thread_t *th, lp_task_t *task,
                        uint64_t t) {
  lp_frame_t *fr = lp_engine_top(th);
  (void)e;
  if (fr == NULL || fr->task != NULL || task == NULL)
    return;
  lp_task_account(task, t);
  task->running++;
  task->last = t;
  task->refs++;
  fr->task = task;
  pause_caller(th, t);
}

/* The top frame of th runs for its task on top of a frame of another task:
 * that task waits for it (counted as await, not time) meanwhile. */
static void pause_caller(lp_thread_t *th, uint64_t t) {
  lp_frame_t *fr = lp_engine_top(th);
  lp_task_t *below = lp_engine_caller_task(th);
  if (fr->task == NULL || below == NULL || below == fr->task ||
      below->running == 0)
    return;
  lp_task_account(below, t);
  below->running--;
  below->parked++;
  fr->paused = below;
}

/* The frame fr leaves the stack at t: the task it paused is active again. */
static void unpause(lp_frame_t *fr, uint64_t t) {
  if (fr->paused != NULL) {
    lp_task_account(fr->paused, t);
    fr->paused->parked--;
    fr->paused->running++;
    fr->paused = NULL;
  }
}

/* A frame of a task changes state at t: running -1/0/+1, parked -1/0/+1. */
static void task_move(lp_frame_t *fr, uint64_t t, int running, int parked) {
  if (fr->task != NULL) {
    lp_task_account(fr->task, t);
    fr->task->running += (uint32_t)running;
    fr->task->parked += (uint32_t)parked;
  }
}

/* A frame leaves the engine: drop its task reference. */
static void forget_task(lp_engine_t *e, lp_frame_t *fr) {
  if (fr->task != NULL) {
    lp_tasks_unref(&e->tasks, fr->task);
    fr->task = NULL;
  }
}

/* Returns a free pool slot, or UINT32_MAX when the pool cannot grow. */
static uint32_t pool_take(lp_engine_t *e) {
  uint32_t i;
  if (e->pool_free != 0) {
    i = e->pool_free - 1;
    e->pool_free = (uint32_t)e->pool[i].ident;
    return i;
  }
  if (e->pool_len == e->pool_cap) {
    uint32_t cap = e->pool_cap ? e->pool_cap * 2 : 64;
    lp_frame_t *np;
    lp__sync_lock(&e->sync);
    np = lp__realloc(e->pool, cap * sizeof(*np));
    if (np != NULL) {
      e->pool = np;
      e->pool_cap = cap;
    }
    lp__sync_unlock(&e->sync);
    if (np == NULL)
      return UINT32_MAX;
  }
  e->pool[e->pool_len].func = NULL; /* free until filled */
  return e->pool_len++;
}

static void pool_give(lp_engine_t *e, uint32_t i) {
  e->pool[i].func = NULL;
  e->pool[i].ident = e->pool_free;
  e->pool_free = i + 1;
}

/* Counts the suspension of a parked frame up to t. */
static void end_suspension(lp_frame_t *fr, uint64_t t) {
  if (fr->line != NULL)
    fr->line->await += t - fr->mark;
  fr->mark = t;
}

/* Frames cache a pointer into their function's line array: when the array
 * moves, every live frame of the function follows it. */
static void repoint(lp_frame_t *fr, const lp_func_t *func) {
  if (fr->func == func && fr->line != NULL)
    fr->line = lp_func_line(fr->func, fr->lineno);
}

int lp__engine_grow(lp_engine_t *e, lp_func_t *func, int32_t lineno,
                    lp_line_t **out) {
  lp_line_t *old = func->lines;
  lp_thread_t *th;
  uint32_t i;
  int err = lp_func_reserve(func, lineno, out);
  if (err != 0 || func->lines == old)
    return err;
  for (th = e->threads; th != NULL; th = th->next)
    for (i = 0; i < th->depth; i++)
      repoint(&th->stack[i], func);
  for (i = 0; i < e->pool_len; i++)
    repoint(&e->pool[i], func);
  return 0;
}

int lp_engine_drop(lp_engine_t *e, uintptr_t key, uint64_t t,
                   uintptr_t *user_out) {
  uintptr_t v;
  if (key == 0 || !lp_map_get(&e->parked, key, &v))
    return 0;
  end_suspension(&e->pool[v], t);
  task_move(&e->pool[v], t, 0, -1);
  forget_task(e, &e->pool[v]);
  *user_out = e->pool[v].user;
  lp_map_del(&e->parked, key);
  pool_give(e, (uint32_t)v);
  e->nparked--;
  return 1;
}

int lp_engine_yield(lp_engine_t *e, lp_thread_t *th, uintptr_t key,
                    uint64_t t, uintptr_t *user_out) {
  lp_frame_t *fr = lp_engine_top(th);
  uintptr_t old_user;
  uint32_t slot;
  int err;
  *user_out = 0;
  if (fr == NULL || key == 0)
    return LP_EINVAL;
  lp__frame_close(fr, t);
  fr->state = LP_FRAME_SUSPENDED;
  fr->mark = t;
  /* A stale frame under the same key: its owner died unseen. */
  if (lp_engine_drop(e, key, t, &old_user))
    *user_out = old_user;
  slot = pool_take(e);
  if (slot == UINT32_MAX ||
      (err = lp_map_put(&e->parked, key, slot)) != 0) {
    if (slot != UINT32_MAX)
      pool_give(e, slot);
    if (*user_out == 0)
      *user_out = fr->user;
    task_move(fr, t, -1, 0);
    unpause(fr, t);
    forget_task(e, fr);
    pop(th);
    return LP_ENOMEM;
  }
  task_move(fr, t, -1, +1);
  unpause(fr, t);
  e->pool[slot] = *fr;
  e->nparked++;
  pop(th);
  return 0;
}

int lp_engine_resume(lp_engine_t *e, lp_thread_t *th, uintptr_t key,
                     lp_func_t *func, uintptr_t ident, int32_t lineno,
                     uint64_t t) {
  uintptr_t v;
  lp_frame_t fr;
  int err;
  if (key != 0 && lp_map_get(&e->parked, key, &v)) {
    fr = e->pool[v];
    fr.ident = ident;
    fr.stretch = t;
    fr.state = LP_FRAME_RUNNING;
    if ((err = push(th, &fr)) != 0)
      return err; /* still parked, its suspension still open */
    end_suspension(lp_engine_top(th), t);
    task_move(lp_engine_top(th), t, +1, -1);
    pause_caller(th, t);
    lp_map_del(&e->parked, key);
    pool_give(e, (uint32_t)v);
    e->nparked--;
    return 1;
  }
  frame_init(&fr, func, ident, t);
  /* Adopted at its current line; no hit: the line started unseen. */
  if (lineno > 0 && lp__engine_grow(e, func, lineno, &fr.line) == 0)
    fr.lineno = lineno;
  else
    fr.line = NULL;
  return push(th, &fr);
}

uintptr_t lp_engine_return(lp_engine_t *e, lp_thread_t *th, uint64_t t) {
  lp_frame_t *fr = lp_engine_top(th);
  if (fr == NULL)
    return 0;
  lp__frame_close(fr, t);
  task_move(fr, t, -1, 0);
  unpause(fr, t);
  forget_task(e, fr);
  pop(th);
  return fr->user;
}

uintptr_t lp_engine_unwind(lp_engine_t *e, lp_thread_t *th, uint64_t t) {
  return lp_engine_return(e, th, t);
}

void lp_engine_settle(lp_engine_t *e, uint64_t t) {
  lp_thread_t *th;
  uint32_t i;
  for (th = e->threads; th != NULL; th = th->next) {
    for (i = 0; i < th->depth; i++) {
      lp__frame_close(&th->stack[i], t);
      th->stack[i].mark = t;
    }
  }
  for (i = 0; i < e->pool_len; i++)
    if (e->pool[i].func != NULL)
      end_suspension(&e->pool[i], t);
  for (i = 0; i < e->tasks.nlive; i++)
    lp_task_account(e->tasks.live[i], t);
}

void lp_engine_detach_thread(lp_engine_t *e, lp_thread_t *th, uint64_t t,
                             void (*cb)(uintptr_t)) {
  while (th->depth > 0) {
    uintptr_t user = lp_engine_return(e, th, t);
    if (user != 0 && cb != NULL)
      cb(user);
  }
}

void lp_engine_detach(lp_engine_t *e, uint64_t t, void (*cb)(uintptr_t)) {
  lp_thread_t *th;
  for (th = e->threads; th != NULL; th = th->next)
    lp_engine_detach_thread(e, th, t, cb);
}

void lp_engine_each_user(lp_engine_t *e, void (*cb)(uintptr_t)) {
  lp_thread_t *th;
  uint32_t i;
  for (th = e->threads; th != NULL; th = th->next) {
    for (i = 0; i < th->depth; i++) {
      if (th->stack[i].user != 0) {
        cb(th->stack[i].user);
        th->stack[i].user = 0;
      }
    }
  }
  for (i = 0; i < e->pool_len; i++) {
    if (e->pool[i].func != NULL && e->pool[i].user != 0) {
      cb(e->pool[i].user);
      e->pool[i].user = 0;
    }
  }
}
