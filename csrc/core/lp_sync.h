/* lp_sync.h - how the recording thread and one reader on another thread
 * (the worker, lp_worker.h) share an engine. docs/worker.md explains the
 * scheme; in short:
 *
 *   - Every change of engine state happens between lp_sync_write_begin and
 *     lp_sync_write_end. They keep a sequence number that is odd while a
 *     change is under way (a seqlock). Writers are serialized by the caller
 *     (the GIL), so there is one writer at a time.
 *   - A change that frees, moves or publishes memory a reader follows (an
 *     array that grows, a function or task record born or retired, a name
 *     replaced) also holds the mutex. The reader holds the mutex while it
 *     copies, so it never touches freed memory.
 *   - The reader copies optimistically and keeps the copy only if the
 *     sequence number was even and did not change meanwhile. If the
 *     program keeps changing state, the reader sets `pause`: the writer
 *     then waits at its next outermost lp_sync_write_end until the copy is
 *     done (a few microseconds to a millisecond), so a snapshot is always
 *     consistent and the writer is never held for long.
 *
 * The writer's cost per event is two stores and one load, no atomic
 * read-modify-write and no fence instruction on x86-64. */
#ifndef LP_SYNC_H
#define LP_SYNC_H

#include <stdint.h>
#include <uv.h>

#if defined(__GNUC__)
#define LP_SYNC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LP_SYNC_UNLIKELY(x) (x)
#endif

typedef struct lp_sync_s {
  uv_mutex_t mutex;
  uv_cond_t cond;   /* the writer waits here while pause is set */
  uint64_t seq;     /* odd while the writer changes state */
  int pause;        /* set by a reader that could not get a stable copy */
  int ready;        /* mutex and cond are initialized */
} lp_sync_t;

/* Initializes s. Returns 0 or LP_ENOMEM (libuv could not create the mutex
 * or the condition variable; s is then not ready and must not be used). */
int lp_sync_init(lp_sync_t *s);

/* Destroys what lp_sync_init made. No reader may be running. */
void lp_sync_close(lp_sync_t *s);

/* Takes and releases the mutex; both do nothing when s is NULL, so data
 * structures used without a reader (a profile read from a file) pass NULL. */
static inline void lp__sync_lock(lp_sync_t *s) {
  if (s != NULL)
    uv_mutex_lock(&s->mutex);
}
static inline void lp__sync_unlock(lp_sync_t *s) {
  if (s != NULL)
    uv_mutex_unlock(&s->mutex);
}

/* Waits while a reader has asked the writer to pause. */
void lp__sync_wait(lp_sync_t *s);

/* Starts an outermost change, for a caller that read the sequence number q
 * itself and found it even. */
static inline void lp_sync_write_open(lp_sync_t *s, uint64_t q) {
  __atomic_store_n(&s->seq, q + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
}

/* Starts a change. Returns what lp_sync_write_end needs: the sequence
 * number before the change, odd if this change is nested in another (a
 * weak reference callback run by the garbage collector inside a hook). */
static inline uint64_t lp_sync_write_begin(lp_sync_t *s) {
  uint64_t q = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
  if (!LP_SYNC_UNLIKELY(q & 1))
    lp_sync_write_open(s, q);
  return q;
}

/* Ends a change started by lp_sync_write_begin, which returned q. Only the
 * outermost change moves the number (nested ones leave it odd), so the
 * number to store is known without reading it again. */
static inline void lp_sync_write_end(lp_sync_t *s, uint64_t q) {
  if (LP_SYNC_UNLIKELY(q & 1))
    return;
  __atomic_store_n(&s->seq, q + 2, __ATOMIC_RELEASE);
  if (LP_SYNC_UNLIKELY(__atomic_load_n(&s->pause, __ATOMIC_RELAXED)))
    lp__sync_wait(s);
}

#endif
