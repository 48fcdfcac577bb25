/* lp_worker.h - the native worker: one thread with a libuv loop of its own
 * that writes periodic snapshots of an engine to a file and serves live
 * snapshots over a socket (lp_proto.h). It never touches a Python object
 * and never takes the GIL: it reads the engine only through
 * lp_snapshot_take, so it keeps answering while the program is stuck.
 *
 * Lifecycle, all from the owning thread:
 *   lp_worker_init   the loop, the wake-up socket pair and the listening
 *                    socket (address errors are reported here);
 *   lp_worker_start  the thread, with every signal blocked in it;
 *   lp_worker_stop   sets the stop flag and sends a byte on the wake-up
 *                    socket (the only way in); the thread closes every
 *                    handle, the loop drains, the thread is joined;
 *   lp_worker_close  uv_loop_close (which must return 0), the unix socket
 *                    file removed, memory freed.
 *
 * The program owns the process's descriptor table and may close or reuse
 * the worker's descriptors (os.closerange(3, N) at daemon start-up). The
 * thread checks every descriptor it owns (the loop's epoll instance, the
 * wake-up pair, the listening socket, each client) before every call into
 * libuv and wakes at least every LP_WORKER_CHECK_MS to do so. If one was
 * closed or now is another file, the worker is lost: the thread returns at
 * once, calls no libuv function and closes no descriptor again (the
 * numbers may be the program's now), lp_worker_stop sends nothing,
 * lp_worker_close keeps the loop's memory, and lp_worker_stats says why.
 * The engine is not touched: the profile is complete.
 *
 * fork(): the owner stops and closes the worker before fork and starts a
 * new one in the parent after it; the child runs without a worker
 * (docs/worker.md). The engine must outlive the worker. */
#ifndef LP_WORKER_H
#define LP_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "lp_engine.h"
#include "lp_file.h"

#define LP_WORKER_MAX_CLIENTS 8
/* A client with no request under way, silent this long, is dropped; so is
 * one that does not read a reply within this time. */
#define LP_WORKER_IDLE_MS 30000
/* A request must be complete within this time of its first byte (more
 * bytes do not extend it). */
#define LP_WORKER_REQUEST_MS 5000
/* Live requests get a fresh snapshot at most this often; requests in
 * between get the last one. Periodic flushes always take a fresh one. */
#define LP_WORKER_SNAPSHOT_MS 100
/* A client's requests are answered at most once per this time; one that
 * comes sooner waits. So a flood of requests costs the machine little CPU
 * (the flooder waits too), whatever the snapshots cost. */
#define LP_WORKER_REQUEST_GAP_MS 10
/* The thread wakes at least this often to check its descriptors. */
#define LP_WORKER_CHECK_MS 100
#define LP_WORKER_LOST_MAX 160

typedef struct lp_worker_s lp_worker_t;

typedef struct lp_worker_opts_s {
  const char *flush_path;  /* periodic snapshots go here; NULL: none */
  uint64_t flush_ms;       /* their period in milliseconds, at least 1 */
  const char *listen;      /* live view address (lp_addr_parse); NULL: none */
  int allow_remote;        /* accept an address other than loopback */
  const lp_meta_t *meta;   /* written with every snapshot (copied); the
                              worker adds "created" */
  uint64_t t0;             /* task times in files count from here */
} lp_worker_opts_t;

/* Counters, readable from any thread. */
typedef struct lp_worker_stats_s {
  uint64_t flushes;       /* snapshots written to flush_path */
  uint64_t flush_errors;  /* failed writes (the old file stays) */
  int flush_errno;        /* errno of the last failed write, else 0 */
  uint64_t served;        /* live requests answered */
  uint64_t rejected;      /* malformed or too long requests; clients
                             refused for want of memory */
  uint64_t busy;          /* snapshots that could not be had in time */
  uint64_t snapshots;     /* snapshots taken of the engine */
  uint64_t evicted;       /* clients dropped to make room for a new one */
  uint64_t expired;       /* clients dropped at a deadline */
  int lost;               /* 1 once the worker lost a descriptor */
  char lost_why[LP_WORKER_LOST_MAX]; /* which, in words; "" if not lost */
} lp_worker_stats_t;

/* Creates a worker for e with opts (at least one of flush_path and listen)
 * and stores it in *out. Binds and listens at once, so a bad or busy
 * address fails here; a unix socket is created with mode 0600, and a stale
 * socket file at its path (nothing listening) is replaced. Returns 0,
 * LP_EINVAL (no job, flush_ms 0), LP_EADDR, LP_EREMOTE (an address beyond
 * loopback without allow_remote), LP_ENOMEM, or LP_EIO (the path is too
 * long for a unix socket, its directory is missing, another file or
 * process is there, bind or listen failed). On error nothing is left
 * behind and, if errbuf is not NULL, a one-line explanation is written
 * there ("cannot listen at ADDR: WHY"). */
int lp_worker_init(lp_worker_t **out, lp_engine_t *e,
                   const lp_worker_opts_t *opts, char *errbuf, size_t errlen);

/* The address it listens at, with the real port when 0 was asked
 * ("127.0.0.1:40123", "unix:/tmp/p.sock"), or "" without a live view. */
const char *lp_worker_address(const lp_worker_t *w);

/* Starts the thread. Returns 0, LP_ESTATE (already started or stopped) or
 * LP_ENOMEM (no thread; the worker can still be closed). */
int lp_worker_start(lp_worker_t *w);

/* Stops the thread and joins it (if started): at once if its wake-up
 * socket is still ours, else within LP_WORKER_CHECK_MS (plus a snapshot
 * or a flush under way). Idempotent. */
void lp_worker_stop(lp_worker_t *w);

/* Stops the worker if needed and frees it. Returns 0, or LP_ESTATE if
 * uv_loop_close did not return 0 (a handle was left open: a bug). A lost
 * worker returns 0: its socket file is removed if it is still the one it
 * bound, its descriptors are left alone and its loop's memory is kept
 * until the process ends (a few kilobytes). */
int lp_worker_close(lp_worker_t *w);

/* Copies the counters into *out. */
void lp_worker_stats(const lp_worker_t *w, lp_worker_stats_t *out);

#endif
