/* lp_engine.h - per-frame attribution of time to lines.
 *
 * The hook backends translate CPython's events into six engine calls:
 * start, line, yield, resume, return and unwind, each with a timestamp.
 * The engine keeps one record per live profiled frame: running frames on
 * their thread's stack, suspended ones parked under a key that the backend
 * chooses (the generator object's address). It charges
 *   - active time to the line a frame is executing, from a line event or
 *     resume to the next line event, suspension, return or unwind;
 *   - await time to the line a frame is suspended at, from yield to resume
 *     (or to lp_engine_drop when the suspended frame is destroyed);
 *   - and to the event-loop task of the frame, at the task level: the task
 *     is active while any of its profiled frames runs and awaiting while
 *     none runs and one is suspended (see lp_task_account), so nested
 *     frames of one task are never counted twice.
 * The semantics are written out in docs/semantics.md.
 *
 * Thread contract: every call on one engine is serialized by the caller
 * (the GIL), and wrapped by the caller in lp_sync_write_begin/end on
 * e->sync when a reader may run (lp_snapshot.h). Nothing is allocated per
 * line event; the stacks, the parked pool and the line arrays grow
 * geometrically, under e->sync's mutex, and report LP_ENOMEM. */
#ifndef LP_ENGINE_H
#define LP_ENGINE_H

#include <stdint.h>

#include "lp_clock.h"
#include "lp_map.h"
#include "lp_sync.h"
#include "lp_table.h"
#include "lp_task.h"

enum { LP_FRAME_RUNNING = 1, LP_FRAME_SUSPENDED = 2 };

typedef struct lp_frame_s {
  lp_func_t *func;
  uintptr_t ident;  /* the backend's identity of the running frame */
  uintptr_t user;   /* the backend's, carried across suspension */
  uint64_t mark;    /* time is accounted up to here */
  uint64_t stretch; /* start of the current uninterrupted active stretch */
  lp_line_t *line;  /* lineno's counters (NULL before the first line event);
                       re-pointed when the function's array grows */
  int32_t lineno;   /* current line; 0 before the first line event */
  uint32_t state;
  lp_task_t *task;  /* its event-loop task (a reference), or NULL */
  lp_task_t *paused; /* another task's, running below it, that it stopped */
} lp_frame_t;

typedef struct lp_thread_s {
  lp_frame_t *stack; /* running profiled frames, innermost last */
  lp_frame_t *top;   /* &stack[depth - 1], or NULL when depth is 0 */
  uint32_t depth;
  uint32_t cap;
  uint64_t id;       /* the backend's thread id */
  lp_sync_t *sync;   /* its engine's */
  struct lp_thread_s *next;
} lp_thread_t;

typedef struct lp_engine_s {
  lp_table_t table;
  lp_tasks_t tasks;
  lp_clock_cb clock;
  void *clock_arg;
  lp_thread_t *threads;
  lp_map_t parked;    /* key -> index into pool */
  lp_frame_t *pool;   /* parked frames; free slots are chained through ident */
  uint32_t pool_len;
  uint32_t pool_cap;
  uint32_t pool_free; /* index + 1 of the first free slot; 0: none */
  uint32_t nparked;
  lp_sync_t sync;     /* shared with a reader: see lp_sync.h */
} lp_engine_t;

/* Initializes an engine with an empty table. clock and clock_arg give the
 * time source (lp_clock_monotonic in production). Returns 0 or LP_ENOMEM
 * (the mutex could not be made; close the engine all the same). */
int lp_engine_init(lp_engine_t *e, lp_clock_cb clock, void *clock_arg);

/* Frees threads, parked frames and the table; the engine is then empty
 * and usable again. user values of live frames are dropped without
 * notice: release them first (lp_engine_each_user). No reader may run. */
void lp_engine_close(lp_engine_t *e);

static inline uint64_t lp_engine_now(const lp_engine_t *e) {
  return e->clock(e->clock_arg);
}

/* Creates a thread record (empty stack) and stores it in *out. It lives
 * until lp_engine_close. Returns 0 or LP_ENOMEM. */
int lp_engine_thread_new(lp_engine_t *e, uint64_t id, lp_thread_t **out);

static inline lp_frame_t *lp_engine_top(lp_thread_t *th) {
  return th->top;
}

/* Pushes a new running frame of func. The frame has no line until the
 * first lp_engine_line. Returns 0 or LP_ENOMEM (nothing pushed). */
int lp_engine_start(lp_engine_t *e, lp_thread_t *th, lp_func_t *func,
                    uintptr_t ident, uint64_t t);

/* Charges the running frame fr's open time up to t (t >= fr->mark) to ln,
 * its line's counters, and the stretch so far to ln's Max. */
static inline void lp__line_run(lp_line_t *ln, const lp_frame_t *fr,
                                uint64_t t) {
  ln->time += t - fr->mark;
  if (t - fr->stretch > ln->max)
    ln->max = t - fr->stretch;
}

/* Ends the current stretch at t: its time goes to the current line. */
static inline void lp__frame_close(lp_frame_t *fr, uint64_t t) {
  if (fr->line != 0)
    lp__line_run(fr->line, fr, t);
}

/* The slow half of lp_engine_line: grows fr's function's array to lineno
 * and re-points every live frame of that function. Returns 0, LP_ENOMEM or
 * LP_EINVAL, and the counters of lineno in *out. */
int lp__engine_grow(lp_engine_t *e, lp_func_t *func, int32_t lineno,
                    lp_line_t **out);

/* A line event whose counters ln (of lineno) are known. */
static inline void lp__engine_line_at(lp_frame_t *fr, lp_line_t *ln,
                                      int32_t lineno, uint64_t t) {
  lp__frame_close(fr, t);
  ln->hits++;
  fr->line = ln;
  fr->lineno = lineno;
  fr->mark = t;
  fr->stretch = t;
}

/* A line event: the running frame fr of e starts executing lineno at t.
 * Returns 0, or LP_ENOMEM / LP_EINVAL when the line array cannot grow to
 * lineno (the event is then not counted). */
static inline int lp_engine_line(lp_engine_t *e, lp_frame_t *fr,
                                 int32_t lineno, uint64_t t) {
  lp_line_t *ln = lp_func_line(fr->func, lineno);
  if (ln == 0) {
    int err = lp__engine_grow(e, fr->func, lineno, &ln);
    if (err)
      return err;
  }
  lp__engine_line_at(fr, ln, lineno, t);
  return 0;
}

/* Attributes the top frame of th, just started or adopted at t, to task
 * (NULL: no task), taking a reference; the task is active from t. If the
 * frame below belongs to another task (an eager task's first step runs
 * inside its creator's create_task()), that task waits (await, not time)
 * until this frame leaves the stack. */
void lp_engine_set_task(lp_engine_t *e, lp_thread_t *th, lp_task_t *task,
                        uint64_t t);

/* Returns the task of the frame below the top of th, or NULL. */
static inline lp_task_t *lp_engine_caller_task(const lp_thread_t *th) {
  return th->depth >= 2 ? th->stack[th->depth - 2].task : 0;
}

/* The top frame of th suspends at t (yield or await). It leaves the stack
 * and is parked under key (nonzero, unique among parked frames; a frame
 * already parked under key is replaced, its suspension ended at t).
 * Returns 0, LP_EINVAL (empty stack or key 0) or LP_ENOMEM (the frame is
 * popped and forgotten: its user value is stored in *user_out, or 0). */
int lp_engine_yield(lp_engine_t *e, lp_thread_t *th, uintptr_t key,
                    uint64_t t, uintptr_t *user_out);

/* A frame of func resumes at t on th (send, next, or throw). If a frame is
 * parked under key, its await time up to t goes to the line it suspended
 * at and it is pushed back, with ident replaced; its task is active again
 * and, as in lp_engine_set_task, a different task running directly below
 * waits meanwhile (a generator of one task stepped by another). Otherwise
 * (profiling was
 * enabled while it was suspended) a new frame is adopted at lineno, without
 * a hit. Returns 1 (unparked), 0 (adopted) or LP_ENOMEM (nothing pushed;
 * a parked frame stays parked). */
int lp_engine_resume(lp_engine_t *e, lp_thread_t *th, uintptr_t key,
                     lp_func_t *func, uintptr_t ident, int32_t lineno,
                     uint64_t t);

/* The top frame of th returns at t. Its last stretch goes to its line and
 * it is popped. Returns the frame's user value (0 if none or if the stack
 * was empty). */
uintptr_t lp_engine_return(lp_engine_t *e, lp_thread_t *th, uint64_t t);

/* The top frame of th exits by an exception at t: accounted as a return. */
uintptr_t lp_engine_unwind(lp_engine_t *e, lp_thread_t *th, uint64_t t);

/* The frame parked under key was destroyed while suspended: its
 * suspension ends at t. Returns 1 and its user value in *user_out, or 0 if
 * nothing is parked under key. */
int lp_engine_drop(lp_engine_t *e, uintptr_t key, uint64_t t,
                   uintptr_t *user_out);

/* Counts the open time of every live frame up to t: running lines get
 * their active time, suspended lines their await time. Later accounting is
 * not disturbed: the stretch a Max is measured over goes on. */
void lp_engine_settle(lp_engine_t *e, uint64_t t);

/* Ends every running frame of every thread at t, as if it returned (used
 * when profiling is switched off). Parked frames stay parked. cb, if not
 * NULL, is called with each popped frame's nonzero user value. */
void lp_engine_detach(lp_engine_t *e, uint64_t t, void (*cb)(uintptr_t user));

/* Ends every running frame of th at t, as if it returned (its thread is
 * gone: the other threads of a process after fork()). cb as for
 * lp_engine_detach. */
void lp_engine_detach_thread(lp_engine_t *e, lp_thread_t *th, uint64_t t,
                             void (*cb)(uintptr_t user));

/* Calls cb with the user value of every live frame that has one, running
 * or parked, and clears it. */
void lp_engine_each_user(lp_engine_t *e, void (*cb)(uintptr_t user));

#endif
