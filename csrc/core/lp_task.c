#include "lp_task.h"

#include <string.h>

#include "lp_alloc.h"
#include "lp_error.h"

void lp_tasks_init(lp_tasks_t *r, uint32_t keep) {
  memset(r, 0, sizeof(*r)); /* sync NULL */
  r->keep = keep ? keep : LP_TASKS_KEEP;
  lp_map_init(&r->folds);
}

/* A record and copies of its two names in one allocation: the names
 * follow the struct. A rename moves name to an allocation of its own. */
static lp_task_t *task_alloc(const char *name, const char *coro) {
  size_t ln = strlen(name) + 1, lc = strlen(coro) + 1;
  lp_task_t *t = lp__calloc(1, sizeof(*t) + ln + lc);
  if (t == NULL)
    return NULL;
  t->name = (char *)(t + 1);
  t->coro = t->name + ln;
  memcpy(t->name, name, ln);
  memcpy(t->coro, coro, lc);
  return t;
}

static int name_inline(const lp_task_t *t) {
  return t->name == (const char *)(t + 1);
}

static void task_free(lp_task_t *t) {
  if (!name_inline(t))
    lp__free(t->name);
  lp__free(t);
}

static void free_retired(lp_tasks_t *r) {
  uint32_t i;
  for (i = 0; i < r->nkept; i++)
    task_free(r->kept[i]);
  for (i = 0; i < r->nfolds; i++)
    task_free(r->fold_list[i]);
  r->nkept = 0;
  r->nfolds = 0;
  lp_map_close(&r->folds);
}

void lp_tasks_close(lp_tasks_t *r) {
  lp_sync_t *sync = r->sync;
  uint32_t i;
  lp__sync_lock(sync);
  for (i = 0; i < r->nlive; i++)
    task_free(r->live[i]);
  free_retired(r);
  lp__free(r->live);
  lp__free(r->kept);
  lp__free(r->fold_list);
  lp_tasks_init(r, r->keep);
  r->sync = sync;
  lp__sync_unlock(sync);
}

/* Makes room for one more pointer in *arr. Returns 0 or LP_ENOMEM. */
static int reserve(lp_task_t ***arr, uint32_t n, uint32_t *cap) {
  if (n == *cap) {
    uint32_t c = *cap ? *cap * 2 : 64;
    lp_task_t **na = lp__realloc(*arr, c * sizeof(*na));
    if (na == NULL)
      return LP_ENOMEM;
    *arr = na;
    *cap = c;
  }
  return 0;
}

/* reserve, under the mutex: the array may move. */
static int reserve_locked(lp_tasks_t *r, lp_task_t ***arr, uint32_t n,
                          uint32_t *cap) {
  int err;
  if (n < *cap)
    return 0;
  lp__sync_lock(r->sync);
  err = reserve(arr, n, cap);
  lp__sync_unlock(r->sync);
  return err;
}

int lp_tasks_new(lp_tasks_t *r, const char *name, const char *coro,
                 uint64_t t, lp_task_t **out) {
  lp_task_t *task;
  if (reserve_locked(r, &r->live, r->nlive, &r->live_cap) != 0)
    return LP_ENOMEM;
  if ((task = task_alloc(name, coro)) == NULL)
    return LP_ENOMEM;
  task->id = ++r->next_id;
  task->first = task->last = task->mark = t;
  task->refs = 1;
  task->slot = r->nlive;
  lp__sync_lock(r->sync);
  r->live[r->nlive++] = task;
  lp__sync_unlock(r->sync);
  *out = task;
  return 0;
}

int lp_task_rename(lp_tasks_t *r, lp_task_t *task, const char *name) {
  char *copy, *old;
  if (strcmp(task->name, name) == 0)
    return 0;
  if ((copy = lp__strdup(name)) == NULL)
    return LP_ENOMEM;
  lp__sync_lock(r->sync);
  old = task->name;
  task->name = copy;
  lp__sync_unlock(r->sync);
  if (old != (char *)(task + 1))
    lp__free(old);
  return 0;
}

/* ---- the kept heap: the lightest retired task at the root ---- */

static uint64_t wall(const lp_task_t *t) { return t->time + t->await; }

static void heap_set(lp_tasks_t *r, uint32_t i, lp_task_t *t) {
  r->kept[i] = t;
  t->slot = i;
}

static void sift_up(lp_tasks_t *r, uint32_t i) {
  lp_task_t *t = r->kept[i];
  while (i > 0 && wall(r->kept[(i - 1) / 2]) > wall(t)) {
    heap_set(r, i, r->kept[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(r, i, t);
}

static void sift_down(lp_tasks_t *r, uint32_t i) {
  lp_task_t *t = r->kept[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= r->nkept)
      break;
    if (c + 1 < r->nkept && wall(r->kept[c + 1]) < wall(r->kept[c]))
      c++;
    if (wall(r->kept[c]) >= wall(t))
      break;
    heap_set(r, i, r->kept[c]);
    i = c;
  }
  heap_set(r, i, t);
}

static int heap_push(lp_tasks_t *r, lp_task_t *t) {
  if (reserve(&r->kept, r->nkept, &r->kept_cap) != 0)
    return LP_ENOMEM;
  r->kept[r->nkept++] = t;
  sift_up(r, r->nkept - 1);
  return 0;
}

/* ---- folds ---- */

static uintptr_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return (uintptr_t)(h | 1);
}

/* Adds t's totals to the fold of its coroutine name and frees t. Returns 0
 * or LP_ENOMEM (t untouched). */
static int fold(lp_tasks_t *r, lp_task_t *t) {
  uintptr_t h = name_hash(t->coro), v = 0;
  lp_task_t *f = NULL;
  if (lp_map_get(&r->folds, h, &v))
    for (f = (lp_task_t *)v; f != NULL && strcmp(f->coro, t->coro); f = f->next)
      ;
  if (f == NULL) {
    if (reserve(&r->fold_list, r->nfolds, &r->folds_cap) != 0)
      return LP_ENOMEM;
    if ((f = task_alloc(t->coro, t->coro)) == NULL)
      return LP_ENOMEM;
    if (lp_map_put(&r->folds, h, (uintptr_t)f) != 0) {
      task_free(f);
      return LP_ENOMEM;
    }
    f->next = (lp_task_t *)v;
    f->first = t->first;
    r->fold_list[r->nfolds++] = f;
  }
  f->time += t->time;
  f->await += t->await;
  f->folded += t->folded ? t->folded : 1;
  if (t->first < f->first)
    f->first = t->first;
  if (t->last > f->last)
    f->last = t->last;
  task_free(t);
  return 0;
}

static int retire(lp_tasks_t *r, lp_task_t *t);

int lp_tasks_unref(lp_tasks_t *r, lp_task_t *t) {
  int err;
  if (t->refs == 0 || --t->refs > 0)
    return 0;
  lp__sync_lock(r->sync);
  err = retire(r, t);
  lp__sync_unlock(r->sync);
  return err;
}

/* t's last reference is gone: keep it whole or fold it. */
static int retire(lp_tasks_t *r, lp_task_t *t) {
  lp_task_t *victim;
  /* Leave the live list (swap-remove). */
  r->nlive--;
  if (t->slot != r->nlive) {
    r->live[t->slot] = r->live[r->nlive];
    r->live[t->slot]->slot = t->slot;
  }
  if (r->nkept < r->keep) {
    if (heap_push(r, t) == 0 || fold(r, t) == 0)
      return 0;
    task_free(t); /* its totals are lost */
    return LP_ENOMEM;
  }
  victim = t;
  if (wall(t) > wall(r->kept[0])) {
    victim = r->kept[0];
    heap_set(r, 0, t);
    sift_down(r, 0);
  }
  if (fold(r, victim) != 0) {
    /* Keep it whole; if even that fails, its totals are lost. */
    if (heap_push(r, victim) != 0)
      task_free(victim);
    return LP_ENOMEM;
  }
  return 0;
}

void lp_tasks_clear(lp_tasks_t *r) {
  uint32_t i;
  lp__sync_lock(r->sync);
  for (i = 0; i < r->nlive; i++) {
    r->live[i]->time = 0;
    r->live[i]->await = 0;
  }
  free_retired(r);
  lp__sync_unlock(r->sync);
}

void lp_tasks_each(const lp_tasks_t *r, void (*cb)(const lp_task_t *, void *),
                   void *arg) {
  uint32_t i;
  for (i = 0; i < r->nlive; i++)
    cb(r->live[i], arg);
  for (i = 0; i < r->nkept; i++)
    cb(r->kept[i], arg);
  for (i = 0; i < r->nfolds; i++)
    cb(r->fold_list[i], arg);
}
