/* lp_snapshot.h - a consistent copy of an engine's counters, tasks and
 * running lines, taken from any thread while the engine keeps recording.
 *
 * The copy is settled at the moment it was taken, like lp_engine_settle
 * but without touching the engine: running lines get their open active
 * time (and a Max that covers the stretch so far), suspended lines their
 * open await time, live tasks their open time. So a line stuck for an hour
 * shows an hour.
 *
 * Thread contract: lp_snapshot_take may run on any thread, concurrently
 * with the engine's writer, under the scheme of lp_sync.h; at most one
 * thread takes snapshots of an engine at a time. A snapshot owns all its
 * memory and shares nothing with the engine. */
#ifndef LP_SNAPSHOT_H
#define LP_SNAPSHOT_H

#include <stdint.h>

#include "lp_engine.h"
#include "lp_file.h"

/* How long lp_snapshot_take keeps trying for a stable copy. */
#define LP_SNAPSHOT_DEADLINE_NS 1000000000ull

typedef struct lp_snapshot_s {
  lp_table_t table;  /* copies of every function and its counters */
  lp_task_t *tasks;  /* every task record: live, kept, then folds */
  uint32_t ntasks;
  char *names;       /* task names and coroutine names point in here */
  lp_now_t *now;     /* one per thread running a profiled line */
  uint32_t nnow;
  uint64_t t;        /* when it was taken, on the engine's clock */
  uint32_t attempts; /* copies made before one was stable (1: at once) */
  uint32_t paused;   /* 1 if the writer was asked to wait for the copy */
} lp_snapshot_t;

/* Copies e's state into *out, which is initialized here; free it with
 * lp_snapshot_close even on error. Returns 0, LP_ENOMEM, or LP_EBUSY when
 * no stable copy could be had within LP_SNAPSHOT_DEADLINE_NS (the writer
 * stayed inside one change all that time). Never blocks the writer for
 * longer than one copy. */
int lp_snapshot_take(lp_engine_t *e, lp_snapshot_t *out);

/* Frees what lp_snapshot_take stored; *s is empty afterwards. */
void lp_snapshot_close(lp_snapshot_t *s);

/* Serializes s and meta (may be NULL) as a .lprof file with a NOW section,
 * task times relative to t0, into buf (zeroed by the caller, freed with
 * lp__free(buf->data)). Returns 0 or LP_ENOMEM. */
int lp_snapshot_encode(const lp_snapshot_t *s, const lp_meta_t *meta,
                       uint64_t t0, lp_buf_t *buf);

#endif
