#include "lp_worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "lp_alloc.h"
#include "lp_clock.h"
#include "lp_error.h"
#include "lp_proto.h"
#include "lp_snapshot.h"

typedef struct client_s client_t;

/* A stream handle that is a TCP socket or a unix socket. */
typedef union {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
} stream_u;

struct lp_worker_s {
  uv_loop_t loop;
  uv_async_t async;       /* the only way in: "stop" */
  uv_timer_t flush_timer;
  stream_u server;
  int has_server, has_flush;
  stream_u spare;   /* accepts and closes when a client has no memory */
  int reject_busy;
  int loop_ready, started, stopped, closed;
  int stopping;           /* set by lp_worker_stop, read by the thread */
  uv_thread_t thread;
  long tid;               /* the thread's kernel id (Linux), set by it */
  lp_engine_t *engine;
  char *flush_path;
  uint64_t flush_ms;
  lp_meta_t meta;
  uint64_t t0;
  lp_addr_t addr;
  char addr_text[160];
  client_t *clients;
  unsigned nclients;
  lp_worker_stats_t stats; /* written by the thread, read with atomics */
};

struct client_s {
  stream_u h;
  uv_timer_t idle;
  lp_worker_t *w;
  char in[LP_PROTO_MAX_REQUEST];
  size_t inlen;
  int writing;  /* a reply is being written: reading is paused */
  int draining; /* after an error reply: input is discarded until EOF */
  int closing;
  uv_shutdown_t shutdown;
  int open_handles;
  client_t *next, *prev;
};

typedef struct {
  uv_write_t req;
  client_t *c;
  lp_buf_t payload;
  char head[128];
  int close_after;
} reply_t;

#define STAT_ADD(w, field) \
  __atomic_fetch_add(&(w)->stats.field, 1, __ATOMIC_RELAXED)

static void say(char *errbuf, size_t errlen, const char *fmt, ...) {
  va_list va;
  if (errbuf == NULL || errlen == 0)
    return;
  va_start(va, fmt);
  vsnprintf(errbuf, errlen, fmt, va);
  va_end(va);
}

/* ---- clients ---- */

static void client_process(client_t *c);
static int read_start(client_t *c);

static void client_closed(uv_handle_t *h) {
  client_t *c = h->data;
  if (--c->open_handles == 0)
    lp__free(c);
}

static void client_close(client_t *c) {
  lp_worker_t *w = c->w;
  if (c->closing)
    return;
  c->closing = 1;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    w->clients = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  w->nclients--;
  uv_close(&c->h.handle, client_closed);
  uv_close((uv_handle_t *)&c->idle, client_closed);
}

static void on_idle(uv_timer_t *t) { client_close(t->data); }

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the drain timer closes the client in any case */
}

/* After an error reply: stop writing and discard input until the client
 * closes (or a second passes), so the client reads the reply before the
 * connection goes; closing with unread input would reset it. */
static void client_drain(client_t *c) {
  c->draining = 1;
  c->inlen = 0;
  uv_timer_start(&c->idle, on_idle, 1000, 0);
  if (uv_shutdown(&c->shutdown, &c->h.stream, on_shutdown) != 0 ||
      read_start(c) != 0)
    client_close(c);
}

static void on_written(uv_write_t *req, int status) {
  reply_t *r = (reply_t *)req;
  client_t *c = r->c;
  int close_after = r->close_after;
  lp__free(r->payload.data);
  lp__free(r);
  c->writing = 0;
  if (c->closing)
    return;
  if (status < 0) {
    client_close(c);
    return;
  }
  if (close_after) {
    client_drain(c);
    return;
  }
  client_process(c);
}

/* Queues head (and payload, if any) to c. */
static void reply(client_t *c, reply_t *r, int close_after) {
  uv_buf_t bufs[2];
  unsigned n = 1;
  r->c = c;
  r->close_after = close_after;
  bufs[0] = uv_buf_init(r->head, (unsigned)strlen(r->head));
  if (r->payload.len > 0)
    bufs[n++] = uv_buf_init((char *)r->payload.data, (unsigned)r->payload.len);
  c->writing = 1;
  uv_read_stop(&c->h.stream);
  if (uv_write(&r->req, &c->h.stream, bufs, n, on_written) != 0) {
    lp__free(r->payload.data);
    lp__free(r);
    c->writing = 0;
    client_close(c);
  }
}

static void reply_error(client_t *c, const char *code, const char *msg) {
  reply_t *r = lp__calloc(1, sizeof(*r));
  STAT_ADD(c->w, rejected);
  if (r == NULL) {
    client_close(c);
    return;
  }
  lp_proto_err(r->head, sizeof(r->head), code, msg);
  reply(c, r, 1);
}

/* Encodes a snapshot with the worker's meta and a fresh "created". */
static int encode_snapshot(lp_worker_t *w, lp_buf_t *buf) {
  lp_snapshot_t s;
  lp_meta_t meta = {0};
  char created[64];
  uint64_t now = lp_clock_realtime();
  uint32_t i;
  int err = lp_snapshot_take(w->engine, &s);
  if (err == LP_EBUSY)
    STAT_ADD(w, busy);
  snprintf(created, sizeof(created), "%llu.%09llu",
           (unsigned long long)(now / 1000000000u),
           (unsigned long long)(now % 1000000000u));
  for (i = 0; err == 0 && i < w->meta.count; i++)
    err = lp_meta_add(&meta, w->meta.keys[i], w->meta.vals[i]);
  if (err == 0)
    err = lp_meta_add(&meta, "created", created);
  if (err == 0)
    err = lp_snapshot_encode(&s, &meta, w->t0, buf);
  lp_meta_close(&meta);
  lp_snapshot_close(&s);
  return err;
}

/* Answers the first complete request in c's buffer, unless a reply is
 * still being written (it resumes from on_written). */
static void client_process(client_t *c) {
  lp_request_t req;
  reply_t *r;
  int n;
  if (c->closing || c->writing || c->draining)
    return;
  n = lp_proto_parse(c->in, c->inlen, &req);
  if (n == 0) {
    if (read_start(c) != 0)
      client_close(c);
    return;
  }
  if (n < 0) {
    int too_long = c->inlen >= LP_PROTO_MAX_REQUEST &&
                   memchr(c->in, '\n', c->inlen) == NULL &&
                   memcmp(c->in, LP_PROTO_MAGIC, sizeof(LP_PROTO_MAGIC) - 1) == 0;
    reply_error(c, too_long ? "too-long" : "bad-request",
                "expected \"" LP_PROTO_MAGIC " SNAPSHOT\" or \"" LP_PROTO_MAGIC
                " PING\" and a newline");
    return;
  }
  memmove(c->in, c->in + n, c->inlen - (size_t)n);
  c->inlen -= (size_t)n;
  uv_timer_again(&c->idle);
  if ((r = lp__calloc(1, sizeof(*r))) == NULL) {
    client_close(c);
    return;
  }
  if (req == LP_REQ_SNAPSHOT) {
    int err = encode_snapshot(c->w, &r->payload);
    if (err != 0) {
      lp__free(r->payload.data);
      lp__free(r);
      reply_error(c, err == LP_EBUSY ? "busy" : "unavailable",
                  err == LP_EBUSY ? "the profiled program stayed inside the "
                                    "profiler for too long; try again"
                                  : lp_strerror(err));
      return;
    }
  }
  STAT_ADD(c->w, served);
  lp_proto_ok(r->head, sizeof(r->head), r->payload.len);
  reply(c, r, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  client_t *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->in + c->inlen, (unsigned)(sizeof(c->in) - c->inlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  client_t *c = s->data;
  (void)buf;
  if (nread < 0) {
    client_close(c);
    return;
  }
  if (c->draining) {
    c->inlen = 0;
    return;
  }
  c->inlen += (size_t)nread;
  client_process(c);
}

/* uv_read_start with our callbacks (client_process restarts reading). */
static int read_start(client_t *c) {
  int rc = uv_read_start(&c->h.stream, on_alloc, on_read);
  return rc == UV_EALREADY ? 0 : rc;
}

static void rejected(uv_handle_t *h) {
  ((lp_worker_t *)h->data)->reject_busy = 0;
}

/* No memory for a client: accept the connection into the worker's spare
 * handle and close it at once. A connection left pending would make libuv
 * stop watching the listening socket, and the server would go deaf. */
static void reject(lp_worker_t *w) {
  int rc;
  if (w->reject_busy)
    return;
  rc = w->addr.is_unix ? uv_pipe_init(&w->loop, &w->spare.pipe, 0)
                       : uv_tcp_init(&w->loop, &w->spare.tcp);
  if (rc != 0)
    return;
  w->reject_busy = 1;
  w->spare.handle.data = w;
  uv_accept(&w->server.stream, &w->spare.stream);
  uv_close(&w->spare.handle, rejected);
  STAT_ADD(w, rejected);
}

static void on_connection(uv_stream_t *server, int status) {
  lp_worker_t *w = server->data;
  client_t *c;
  int rc;
  if (status < 0)
    return;
  if ((c = lp__calloc(1, sizeof(*c))) == NULL) {
    reject(w);
    return;
  }
  c->w = w;
  rc = w->addr.is_unix ? uv_pipe_init(&w->loop, &c->h.pipe, 0)
                       : uv_tcp_init(&w->loop, &c->h.tcp);
  if (rc != 0) {
    lp__free(c);
    reject(w);
    return;
  }
  c->h.handle.data = c;
  c->open_handles = 2;
  uv_timer_init(&w->loop, &c->idle);
  c->idle.data = c;
  c->next = w->clients;
  if (w->clients != NULL)
    w->clients->prev = c;
  w->clients = c;
  w->nclients++;
  if (uv_accept(server, &c->h.stream) != 0) {
    client_close(c);
    return;
  }
  if (w->nclients > LP_WORKER_MAX_CLIENTS) {
    reply_error(c, "busy", "too many clients");
    return;
  }
  uv_timer_start(&c->idle, on_idle, LP_WORKER_IDLE_MS, LP_WORKER_IDLE_MS);
  if (read_start(c) != 0)
    client_close(c);
}

/* ---- the periodic flush ---- */

static void on_flush(uv_timer_t *t) {
  lp_worker_t *w = t->data;
  lp_buf_t buf = {0};
  int err = encode_snapshot(w, &buf);
  if (err == 0)
    err = lp_file_write_buf(w->flush_path, &buf);
  lp__free(buf.data);
  if (err == 0) {
    STAT_ADD(w, flushes);
  } else {
    __atomic_store_n(&w->stats.flush_errno, err == LP_EIO ? errno : 0,
                     __ATOMIC_RELAXED);
    STAT_ADD(w, flush_errors);
  }
}

/* ---- lifecycle ---- */

static void close_all(lp_worker_t *w) {
  while (w->clients != NULL)
    client_close(w->clients);
  if (w->has_server && !uv_is_closing(&w->server.handle))
    uv_close(&w->server.handle, NULL);
  if (w->has_flush && !uv_is_closing((uv_handle_t *)&w->flush_timer))
    uv_close((uv_handle_t *)&w->flush_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->async))
    uv_close((uv_handle_t *)&w->async, NULL);
}

static void on_async(uv_async_t *a) {
  lp_worker_t *w = a->data;
  if (__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE))
    close_all(w);
}

static void run(void *arg) {
  lp_worker_t *w = arg;
#ifdef __linux__
  __atomic_store_n(&w->tid, (long)syscall(SYS_gettid), __ATOMIC_RELEASE);
#endif
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* pthread_join returns when the thread has cleared its id, which the
 * kernel does before it drops the thread from the process: for a moment
 * the process still counts it (/proc/self/stat), and a fork() then is
 * taken for a multi-threaded one (Python 3.12+ warns). Waits, at most
 * 100 ms, until the thread is gone from /proc/self/task. */
static void wait_gone(long tid) {
#ifdef __linux__
  char path[64];
  struct stat st;
  int i;
  if (tid <= 0)
    return;
  snprintf(path, sizeof(path), "/proc/self/task/%ld", tid);
  for (i = 0; i < 1000 && stat(path, &st) == 0; i++) {
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
#else
  (void)tid;
#endif
}

/* A socket file at path that nothing listens at is stale. */
static int unix_path_free(const char *path, char *errbuf, size_t errlen) {
  struct stat st;
  struct sockaddr_un sa;
  int fd, busy;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? 0 : LP_EIO;
  if (!S_ISSOCK(st.st_mode)) {
    say(errbuf, errlen, "cannot listen at unix:%s: %s", path,
        "a file that is not a socket is there");
    return LP_EIO;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
    return LP_EIO;
  busy = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  if (busy) {
    say(errbuf, errlen, "cannot listen at unix:%s: %s", path,
        "another process listens there");
    return LP_EIO;
  }
  return unlink(path) == 0 ? 0 : LP_EIO;
}

static int listen_at(lp_worker_t *w, char *errbuf, size_t errlen) {
  int rc, err;
  if (w->addr.is_unix) {
    if ((err = unix_path_free(w->addr.path, errbuf, errlen)) != 0)
      return err;
    if ((rc = uv_pipe_init(&w->loop, &w->server.pipe, 0)) != 0)
      goto uv_fail;
    w->has_server = 1;
    if ((rc = uv_pipe_bind(&w->server.pipe, w->addr.path)) != 0)
      goto uv_fail;
    /* Owner only, before anyone can connect (listen comes after). */
    if (chmod(w->addr.path, 0600) != 0) {
      rc = uv_translate_sys_error(errno);
      goto uv_fail;
    }
  } else {
    struct sockaddr_storage sa;
    int len = (int)sizeof(sa);
    if ((rc = uv_ip4_addr(w->addr.host, w->addr.port,
                          (struct sockaddr_in *)&sa)) != 0 &&
        (rc = uv_ip6_addr(w->addr.host, w->addr.port,
                          (struct sockaddr_in6 *)&sa)) != 0)
      goto uv_fail;
    if ((rc = uv_tcp_init(&w->loop, &w->server.tcp)) != 0)
      goto uv_fail;
    w->has_server = 1;
    if ((rc = uv_tcp_bind(&w->server.tcp, (struct sockaddr *)&sa, 0)) != 0)
      goto uv_fail;
    if ((rc = uv_tcp_getsockname(&w->server.tcp, (struct sockaddr *)&sa,
                                 &len)) != 0)
      goto uv_fail;
    w->addr.port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
  }
  w->server.handle.data = w;
  if ((rc = uv_listen(&w->server.stream, 128, on_connection)) != 0)
    goto uv_fail;
  lp_addr_format(&w->addr, w->addr_text, sizeof(w->addr_text));
  return 0;
uv_fail:
  lp_addr_format(&w->addr, w->addr_text, sizeof(w->addr_text));
  say(errbuf, errlen, "cannot listen at %s: %s", w->addr_text,
      uv_strerror(rc));
  w->addr_text[0] = '\0';
  return LP_EIO;
}

/* Closes the handles made so far and the loop, on the calling thread. */
static int teardown(lp_worker_t *w) {
  int rc = 0;
  if (w->loop_ready) {
    close_all(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&w->loop);
    w->loop_ready = 0;
  }
  return rc;
}

/* libuv removes a unix socket's file when it closes the server handle
 * (before the close, so a new worker at the same path is not hit). */
static void worker_free(lp_worker_t *w) {
  lp_meta_close(&w->meta);
  lp__free(w->flush_path);
  lp__free(w);
}

int lp_worker_init(lp_worker_t **out, lp_engine_t *e,
                   const lp_worker_opts_t *o, char *errbuf, size_t errlen) {
  lp_worker_t *w;
  uint32_t i;
  int err = 0;
  *out = NULL;
  if (errbuf != NULL && errlen > 0)
    errbuf[0] = '\0';
  if ((o->flush_path == NULL && o->listen == NULL) ||
      (o->flush_path != NULL && o->flush_ms == 0))
    return LP_EINVAL;
  if ((w = lp__calloc(1, sizeof(*w))) == NULL)
    return LP_ENOMEM;
  w->engine = e;
  w->t0 = o->t0;
  w->flush_ms = o->flush_ms;
  if (o->listen != NULL) {
    if ((err = lp_addr_parse(o->listen, &w->addr)) != 0) {
      say(errbuf, errlen, "bad address %s: use HOST:PORT, PORT or unix:PATH",
          o->listen);
      goto fail;
    }
    if (!o->allow_remote && !lp_addr_is_local(&w->addr)) {
      say(errbuf, errlen,
          "refusing to serve on %s: not a loopback address (anyone who can "
          "reach it could read the profile); allow it explicitly",
          o->listen);
      err = LP_EREMOTE;
      goto fail;
    }
  }
  if (o->flush_path != NULL &&
      (w->flush_path = lp__strdup(o->flush_path)) == NULL) {
    err = LP_ENOMEM;
    goto fail;
  }
  for (i = 0; o->meta != NULL && i < o->meta->count; i++)
    if ((err = lp_meta_add(&w->meta, o->meta->keys[i], o->meta->vals[i])))
      goto fail;
  if (uv_loop_init(&w->loop) != 0) {
    err = LP_ENOMEM;
    goto fail;
  }
  w->loop_ready = 1;
  if (uv_async_init(&w->loop, &w->async, on_async) != 0) {
    uv_loop_close(&w->loop);
    w->loop_ready = 0;
    err = LP_ENOMEM;
    goto fail;
  }
  w->async.data = w;
  if (o->flush_path != NULL) {
    uv_timer_init(&w->loop, &w->flush_timer);
    w->flush_timer.data = w;
    w->has_flush = 1;
    uv_timer_start(&w->flush_timer, on_flush, w->flush_ms, w->flush_ms);
  }
  if (o->listen != NULL && (err = listen_at(w, errbuf, errlen)) != 0)
    goto fail;
  *out = w;
  return 0;
fail:
  teardown(w);
  worker_free(w);
  return err;
}

const char *lp_worker_address(const lp_worker_t *w) { return w->addr_text; }

int lp_worker_start(lp_worker_t *w) {
  sigset_t all, old;
  int rc;
  if (w->started || w->stopped)
    return LP_ESTATE;
  /* The thread inherits a mask that blocks every signal: signals stay with
   * the program's threads, and a write to a vanished client fails with
   * EPIPE instead of raising SIGPIPE. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = uv_thread_create(&w->thread, run, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0)
    return LP_ENOMEM;
  w->started = 1;
  return 0;
}

void lp_worker_stop(lp_worker_t *w) {
  if (w->stopped)
    return;
  w->stopped = 1;
  __atomic_store_n(&w->stopping, 1, __ATOMIC_RELEASE);
  if (w->started) {
    uv_async_send(&w->async);
    uv_thread_join(&w->thread);
    wait_gone(__atomic_load_n(&w->tid, __ATOMIC_ACQUIRE));
  }
}

int lp_worker_close(lp_worker_t *w) {
  int rc;
  if (w == NULL)
    return 0;
  lp_worker_stop(w);
  rc = teardown(w); /* after a joined thread: only uv_loop_close is left */
  worker_free(w);
  return rc == 0 ? 0 : LP_ESTATE;
}

void lp_worker_stats(const lp_worker_t *w, lp_worker_stats_t *out) {
  out->flushes = __atomic_load_n(&w->stats.flushes, __ATOMIC_RELAXED);
  out->flush_errors = __atomic_load_n(&w->stats.flush_errors, __ATOMIC_RELAXED);
  out->flush_errno = __atomic_load_n(&w->stats.flush_errno, __ATOMIC_RELAXED);
  out->served = __atomic_load_n(&w->stats.served, __ATOMIC_RELAXED);
  out->rejected = __atomic_load_n(&w->stats.rejected, __ATOMIC_RELAXED);
  out->busy = __atomic_load_n(&w->stats.busy, __ATOMIC_RELAXED);
}
