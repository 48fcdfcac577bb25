/* lp_file.h - the .lprof file: writer and reader. The format is described
 * in docs/format.md: a 32-byte header (magic, version, payload length,
 * CRC-32 of the payload) followed by tagged sections; unknown sections are
 * skipped, so version 1 can gain sections without breaking old readers.
 *
 * Thread contract: the functions here share no state, except the note of
 * the directory lp_file_write_buf last swept (behind a mutex). Writing a
 * table reads its counters; the caller makes sure no one writes them
 * meanwhile (the GIL today). */
#ifndef LP_FILE_H
#define LP_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "lp_table.h"
#include "lp_task.h"

#define LP_FILE_VERSION 1
#define LP_FILE_HEADER_SIZE 32
#define LP_FILE_MAX_SIZE ((size_t)1 << 31)

/* String key/value pairs written in the META section. */
typedef struct lp_meta_s {
  char **keys;
  char **vals;
  uint32_t count;
} lp_meta_t;

/* One thread's running line at the moment of a snapshot (NOW section). */
typedef struct lp_now_s {
  uint64_t thread;  /* the backend's thread id */
  uint64_t task;    /* id of its task record, 0 if none */
  uint64_t elapsed; /* nanoseconds it has been running that line */
  uint32_t func;    /* index of the function, in the order of FUNC sections */
  int32_t lineno;
} lp_now_t;

/* A profile read back from a file. Task records keep the fields id, name,
 * coro, time, await, first, last and folded; first and last count from the
 * start of profiling. */
typedef struct lp_profile_s {
  lp_table_t table;
  lp_meta_t meta;
  lp_task_t *tasks;
  uint32_t ntasks;
  uint32_t version;
  lp_now_t *now;     /* from a live snapshot */
  uint32_t nnow;
  int has_now;       /* the payload had a NOW section: a live snapshot */
} lp_profile_t;

/* A growable byte buffer. */
typedef struct lp_buf_s {
  uint8_t *data;
  size_t len;
  size_t cap;
  int err; /* sticky: LP_ENOMEM once an append failed */
} lp_buf_t;

/* Returns the CRC-32 (IEEE 802.3, as zlib computes it) of len bytes. */
uint32_t lp_crc32(const void *data, size_t len);

/* Adds a pair to meta (copies both strings). Returns 0 or LP_ENOMEM (meta
 * unchanged). */
int lp_meta_add(lp_meta_t *meta, const char *key, const char *val);

/* Frees meta's strings and arrays; meta is empty afterwards. */
void lp_meta_close(lp_meta_t *meta);

/* Serializes table, meta and tasks (both may be NULL) into buf, which the
 * caller initializes to zeros and frees with lp__free(buf->data). Lines whose
 * hits, time and await are all zero are left out. Task times first and last
 * are written relative to t0, the start of profiling. Returns 0 or
 * LP_ENOMEM. */
int lp_file_encode(const lp_table_t *table, const lp_meta_t *meta,
                   const lp_tasks_t *tasks, uint64_t t0, lp_buf_t *buf);

/* What lp_file_encode_parts writes. Tasks come from a registry (tasks) or
 * a plain array (task_list, ntasks). with_now writes a NOW section (of
 * nnow entries, maybe none): the mark of a live snapshot. */
typedef struct lp_file_parts_s {
  const lp_table_t *table;
  const lp_meta_t *meta;
  const lp_tasks_t *tasks;
  const lp_task_t *task_list;
  uint32_t ntasks;
  const lp_now_t *now;
  uint32_t nnow;
  int with_now;
  uint64_t t0;
} lp_file_parts_t;

/* Serializes parts (table required, the rest optional) into buf, as
 * lp_file_encode does. A NOW entry whose func is out of range is left out.
 * Returns 0 or LP_ENOMEM. */
int lp_file_encode_parts(const lp_file_parts_t *parts, lp_buf_t *buf);

/* A temporary file left by a killed writer is removed once it is this old
 * (see lp_file_write_buf). */
#define LP_FILE_STALE_SECONDS 60

/* Writes an encoded profile to path atomically: to a temporary file in the
 * same directory ("PATH.tmp-<pid>-<tid>"), flushed, then renamed over
 * path. Returns 0, or LP_EIO with errno set (path is untouched; the
 * temporary file is removed).
 *
 * First it removes the temporary files that killed writers left in that
 * directory (if this process has not done so in the last 10 seconds):
 * only a name of that form whose pid is not alive, a regular file of the
 * same user that starts with the .lprof magic and has not been modified
 * for LP_FILE_STALE_SECONDS. It never writes to or closes a
 * descriptor that is no longer the file it opened (the program may close
 * and reuse a number meanwhile): that write fails with EBADF. */
int lp_file_write_buf(const char *path, const lp_buf_t *buf);

/* lp_file_encode (without tasks) then lp_file_write_buf. */
int lp_file_write(const char *path, const lp_table_t *table,
                  const lp_meta_t *meta);

/* Parses len bytes into *out, which is initialized here; free it with
 * lp_profile_close even on error. Returns 0, LP_EBADMAGIC, LP_EVERSION,
 * LP_ETRUNC, LP_ECORRUPT, LP_EFORMAT or LP_ENOMEM. Never reads outside
 * data[0, len). */
int lp_file_parse(const void *data, size_t len, lp_profile_t *out);

/* Reads and parses the file at path. Returns lp_file_parse's codes, or
 * LP_EIO with errno set (EISDIR for a directory, EFBIG over
 * LP_FILE_MAX_SIZE). */
int lp_file_read(const char *path, lp_profile_t *out);

/* Frees what lp_file_parse or lp_file_read stored. */
void lp_profile_close(lp_profile_t *p);

#endif
