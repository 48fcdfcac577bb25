/* lp_task.h - per-task totals for event-loop tasks, with bounded memory.
 *
 * A task record is created when a profiled frame is first seen running in
 * a task, and referenced by every live frame of that task. When the task
 * object has died (lp_tasks_end) and no frame references it any more, the
 * record is retired: the LP_TASKS_KEEP heaviest retired tasks (by wall =
 * time + await) are kept individually, the rest are folded into one record
 * per coroutine name. Memory is O(live tasks + LP_TASKS_KEEP + coroutine
 * names), however many tasks a program creates.
 *
 * Thread contract: one writer at a time (the GIL). When the registry
 * belongs to an engine, `sync` is the engine's (lp_sync.h): the writer
 * holds its mutex while records are born, retired, folded or renamed, so
 * a reader holding the mutex never follows a freed pointer. */
#ifndef LP_TASK_H
#define LP_TASK_H

#include <stdint.h>

#include "lp_map.h"
#include "lp_sync.h"

#define LP_TASKS_KEEP 1000

typedef struct lp_task_s {
  uint64_t id;      /* 1, 2, ... in order of first sight; 0 for a fold */
  char *name;       /* the task's name; for a fold, the coroutine name */
  char *coro;       /* qualified name of the task's coroutine */
  uint64_t time;    /* time while one of its profiled frames runs */
  uint64_t await;   /* time while none runs and one is suspended */
  uint64_t first;   /* first and last time seen (monotonic ns) */
  uint64_t last;
  uint64_t folded;  /* tasks folded into this record; 0 for one task */
  uint64_t mark;    /* time and await are accounted up to here */
  uint32_t running; /* its profiled frames running now */
  uint32_t parked;  /* its profiled frames suspended now */
  uint32_t refs;    /* live frames, + 1 while the task object lives */
  uint32_t slot;    /* index in live, or in the kept heap once retired */
  struct lp_task_s *next; /* chain of folds with the same name hash */
} lp_task_t;

typedef struct lp_tasks_s {
  lp_task_t **live;    /* tasks whose object lives or that frames reference */
  uint32_t nlive, live_cap;
  lp_task_t **kept;    /* retired tasks kept whole: a min-heap by wall */
  uint32_t nkept, kept_cap;
  uint32_t keep;       /* how many retired tasks to keep whole */
  lp_map_t folds;      /* hash of coroutine name -> chain of folds */
  lp_task_t **fold_list; /* every fold, in order of creation */
  uint32_t nfolds, folds_cap;
  uint64_t next_id;
  lp_sync_t *sync;     /* the owning engine's, or NULL */
} lp_tasks_t;

/* Counts the task's time up to t, before one of its frames changes state:
 * the task is active while any of its frames runs, and awaiting while none
 * runs and one is suspended. So its time + await never exceed its life,
 * however its frames nest, throw into each other or park at a yield. */
static inline void lp_task_account(lp_task_t *k, uint64_t t) {
  if (k->running != 0)
    k->time += t - k->mark;
  else if (k->parked != 0)
    k->await += t - k->mark;
  else
    goto out;
  k->last = t;
out:
  k->mark = t;
}

/* Initializes an empty registry keeping `keep` retired tasks whole
 * (LP_TASKS_KEEP when 0), without a reader (sync NULL). Allocates
 * nothing. */
void lp_tasks_init(lp_tasks_t *r, uint32_t keep);

/* Frees every record. sync is kept. */
void lp_tasks_close(lp_tasks_t *r);

/* Creates the record of a task first seen at t, holding one reference for
 * the living task object, and stores it in *out. Names are copied.
 * Returns 0 or LP_ENOMEM (nothing created). */
int lp_tasks_new(lp_tasks_t *r, const char *name, const char *coro,
                 uint64_t t, lp_task_t **out);

/* Replaces the task's name with a copy of name. Returns 0 or LP_ENOMEM
 * (the old name stays). */
int lp_task_rename(lp_tasks_t *r, lp_task_t *task, const char *name);

/* Drops one reference (a frame ended, or the task object died). At zero the
 * task is retired: kept whole or folded. Returns 0, or LP_ENOMEM when it
 * could be neither folded nor kept: then its totals are lost. A fold that
 * fails keeps the task whole, one over the bound. */
int lp_tasks_unref(lp_tasks_t *r, lp_task_t *task);

/* Zeroes every total, and forgets retired tasks and folds. */
void lp_tasks_clear(lp_tasks_t *r);

/* Calls cb for every record: live tasks, kept tasks, then folds. */
void lp_tasks_each(const lp_tasks_t *r, void (*cb)(const lp_task_t *, void *),
                   void *arg);

#endif
