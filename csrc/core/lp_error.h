/* lp_error.h - the core's error codes, generated from one list.
 * Every core function that can fail returns 0 or one of these negative
 * codes. Pure data and two pure functions: safe from any thread. */
#ifndef LP_ERROR_H
#define LP_ERROR_H

#define LP_ERRNO_MAP(XX)                                                     \
  XX(NOMEM, "out of memory")                                                 \
  XX(INVAL, "invalid argument")                                              \
  XX(IO, "input/output error")                                               \
  XX(BADMAGIC, "not a lineprof profile (bad magic)")                         \
  XX(VERSION, "profile was written by a newer lineprof (format version too new)") \
  XX(TRUNC, "profile is truncated")                                          \
  XX(CORRUPT, "profile is damaged (checksum mismatch)")                      \
  XX(FORMAT, "profile is malformed")                                         \
  XX(BUSY, "another lineprof profiler is active")                           \
  XX(ADDR, "bad address: use HOST:PORT, PORT or unix:PATH")                  \
  XX(REMOTE, "refusing a non-loopback address (allow it explicitly)")        \
  XX(PROTO, "malformed request")                                             \
  XX(STATE, "the worker is not in a state that allows this")

enum lp__err_index {
  LP__EINDEX_OK = 0,
#define XX(code, _) LP__EINDEX_##code,
  LP_ERRNO_MAP(XX)
#undef XX
  LP__EINDEX_MAX
};

typedef enum {
  LP_OK = 0,
#define XX(code, _) LP_E##code = -LP__EINDEX_##code,
  LP_ERRNO_MAP(XX)
#undef XX
} lp_errno_t;

/* Returns a static one-line message for err; "unknown error" for codes not
 * in the list. Never returns NULL. */
const char *lp_strerror(int err);

/* Returns the static name of err ("LP_ENOMEM"), or "LP_UNKNOWN". */
const char *lp_err_name(int err);

#endif
