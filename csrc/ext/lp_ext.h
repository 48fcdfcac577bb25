/* lp_ext.h - the Profiler object shared by the module and the two hook
 * backends. Everything here runs with the GIL held. The hooks never raise:
 * a failure sets a sticky error, stops recording and is reported by the
 * Python-facing methods. */
#ifndef LP_EXT_H
#define LP_EXT_H

#include "lp_compat.h"

#include "lp_engine.h"
#include "lp_error.h"
#include "lp_file.h"
#include "lp_worker.h"

#if defined(__GNUC__)
#define LP_LIKELY(x) __builtin_expect(!!(x), 1)
#define LP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LP_LIKELY(x) (x)
#define LP_UNLIKELY(x) (x)
#endif

/* The sys.monitoring functions a Profiler holds (lp_profiler_t.mon). */
enum {
  LP_MON_SET_EVENTS,
  LP_MON_SET_LOCAL_EVENTS,
  LP_MON_REGISTER_CALLBACK,
  LP_MON_FREE_TOOL_ID,
  LP_MON_COUNT
};

typedef struct lp_profiler_s {
  PyObject_HEAD
  lp_engine_t eng;
  uint64_t gen;        /* unique per object: validates the thread-local cache */
  PyObject *codes;     /* list of registered code objects: pins them */
  lp_map_t wr_keys;    /* weak reference -> key its frame is parked under */
  PyObject *wr_cb;     /* the weakref callback, bound to this profiler */
  PyObject *wr_dead;   /* last weak reference whose callback ran */
  int enabled;         /* the hook is installed */
  uint64_t recording;  /* enabled and no error: events are accounted. It is
                          gen then (else 0), so lp__tls.gen == recording
                          says both that and that the thread cache holds */
  int error;           /* sticky lp errno, 0 if none */
  char errmsg[160];
  /* event-loop tasks */
  lp_map_t task_index; /* task object -> lp_task_t * */
  lp_map_t task_wrs;   /* weak reference to a task -> task object */
  PyObject *task_cb;   /* the weakref callback for tasks */
  PyObject *get_loop;  /* asyncio.events._get_running_loop, once imported */
  PyObject *cur_task;  /* asyncio.current_task */
  uint64_t t0;         /* creation time: task times count from here */
  PyObject *unnamed[8]; /* eagerly started tasks whose name is not set yet */
  int nunnamed;
  /* sys.monitoring backend */
  int tool_id;
  PyObject *mon[4];     /* sys.monitoring functions (LP_MON_*), held while
                           the hook is installed */
  PyObject *disable;    /* sys.monitoring.DISABLE */
  lp_map_t jump_lines;  /* same-line backward jump -> its line */
  /* the native worker (lp_worker.h), and what restarts it after fork() */
  lp_worker_t *worker;
  char *w_flush;        /* periodic snapshot path, or NULL */
  uint64_t w_ms;
  char *w_listen;       /* the address it bound (real port), or NULL */
  int w_remote;
  lp_meta_t w_meta;
  int w_forked;         /* stopped for a fork(): restart in the parent */
} lp_profiler_t;

/* Thread-local cache of the current thread's engine record. */
typedef struct {
  uint64_t gen;
  lp_thread_t *th;
} lp__tls_t;

#if defined(__GNUC__)
#define LP_TLS_MODEL __attribute__((tls_model("initial-exec")))
#define LP_HIDDEN __attribute__((visibility("hidden")))
#define LP_NOINLINE __attribute__((noinline))
#else
#define LP_NOINLINE
#define LP_TLS_MODEL
#define LP_HIDDEN
#endif

/* initial-exec: one register-relative load instead of __tls_get_addr; the
 * variable is small enough for glibc's static TLS reserve of dlopen'ed
 * modules. */
extern _Thread_local lp__tls_t lp__tls LP_TLS_MODEL LP_HIDDEN;

/* The binding's clock: the engine was created with lp_clock_now, and the
 * hooks call it directly (inlined) rather than through the pointer. */
#define LP_NOW(p) ((void)(p), lp_clock_now(NULL))

/* Returns the calling thread's record, creating it on first use; NULL after
 * a failure (recorded). */
lp_thread_t *lp__thread_slow(lp_profiler_t *p);

static inline lp_thread_t *lp__thread(lp_profiler_t *p) {
  if (LP_LIKELY(lp__tls.gen == p->gen))
    return lp__tls.th;
  return lp__thread_slow(p);
}

/* Records an internal failure: sets the sticky error, stops recording,
 * prints one warning line to stderr. Clears any Python exception. */
void lp__fail(lp_profiler_t *p, int err, const char *where);

/* Makes sure the top frame of th (a generator frame) holds a weak reference
 * to gen, whose callback drops the frame if gen dies while suspended; a
 * coroutine of a task needs none (see there). Returns 0 or -1 (recorded). */
int lp__watch_gen(lp_profiler_t *p, lp_frame_t *top, PyObject *gen);

/* Attributes the top frame of th, just started or adopted at t, to its
 * event-loop task: the caller frame's task if it has one, else the running
 * loop's current task (looked up only here, never per line event). */
void lp__attach_task(lp_profiler_t *p, lp_thread_t *th, uint64_t t);

/* Re-reads the names of tasks started eagerly (see lp_module.c); hooks
 * call LP_REFRESH_NAMES at yields and resumes, cheap when none wait. */
void lp__refresh_task_names(lp_profiler_t *p);
#define LP_REFRESH_NAMES(p)                                                  \
  do {                                                                       \
    if (LP_UNLIKELY((p)->nunnamed > 0))                                      \
      lp__refresh_task_names(p);                                             \
  } while (0)

/* Every change to p->eng outside the hooks goes between these (lp_sync.h),
 * so the worker's snapshots stay consistent. */
#define LP_WRITE_BEGIN(p) uint64_t lp_outer_ = lp_sync_write_begin(&(p)->eng.sync)
#define LP_WRITE_END(p) lp_sync_write_end(&(p)->eng.sync, lp_outer_)

/* Releases a user value handed back by the engine (a weak reference). */
void lp__release_user(lp_profiler_t *p, uintptr_t user);

/* The profiler whose hook is installed (borrowed; its dealloc removes the
 * hook). It stays installed across disable() so that enable()/disable()
 * pairs, which decorated functions make on every call, stay cheap; events
 * arriving while it is not recording return at once. */
extern lp_profiler_t *lp__hooked LP_HIDDEN;

/* Backend entry points, implemented by the backend compiled for this
 * Python. install/remove return 0, or -1 with an exception set; remove
 * never fails at interpreter shutdown. resume/pause switch the events of
 * the calling thread on and off where the backend has per-thread state. */
int lp__hook_install(lp_profiler_t *p);
int lp__hook_remove(lp_profiler_t *p);
void lp__hook_resume(lp_profiler_t *p);
void lp__hook_pause(lp_profiler_t *p);
/* Called after a code object is registered while enabled. */
int lp__hook_add_code(lp_profiler_t *p, PyObject *code);

#endif
