/* lp_proto.h - the live view's wire protocol and addresses, as pure
 * functions over bytes (docs/worker.md describes the protocol).
 *
 *   request:  "LINEPROF/1 SNAPSHOT\n" or "LINEPROF/1 PING\n" ("\r\n" too),
 *             at most LP_PROTO_MAX_REQUEST bytes with its newline;
 *   reply:    "LINEPROF/1 OK <n>\n" then n bytes (a .lprof snapshot with a
 *             NOW section; n is 0 for PING), or
 *             "LINEPROF/1 ERR <code> <message>\n", after which the server
 *             closes the connection.
 *
 * The server's pace (lp_worker.h): a snapshot is at most
 * LP_WORKER_SNAPSHOT_MS (100 ms) old, shared by every request in that
 * time; a connection gets one reply per LP_WORKER_REQUEST_GAP_MS (10 ms);
 * a request must be whole within LP_WORKER_REQUEST_MS (5 s) of its first
 * byte ("ERR timeout").
 *
 * Thread contract: no state; safe from any thread. */
#ifndef LP_PROTO_H
#define LP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define LP_PROTO_MAGIC "LINEPROF/1"
#define LP_PROTO_MAX_REQUEST 256

typedef enum { LP_REQ_SNAPSHOT = 1, LP_REQ_PING = 2 } lp_request_t;

/* Looks for one request at the start of data[0, len). Returns the number
 * of bytes it takes (newline included) and stores it in *out; 0 if more
 * bytes are needed (no newline yet, len < LP_PROTO_MAX_REQUEST); or
 * LP_EPROTO: not a request, or no newline within LP_PROTO_MAX_REQUEST
 * bytes. Never reads outside data[0, len). */
int lp_proto_parse(const char *data, size_t len, lp_request_t *out);

/* Writes the reply header for a payload of n bytes into buf (at least 48
 * bytes). Returns its length. */
size_t lp_proto_ok(char *buf, size_t cap, uint64_t n);

/* Writes an error reply "LINEPROF/1 ERR <code> <message>\n" into buf,
 * truncating message to fit. Returns its length. */
size_t lp_proto_err(char *buf, size_t cap, const char *code,
                    const char *message);

/* A unix socket path holds at most this many bytes with its NUL. Only
 * 107 of them can be bound (sockaddr_un); lp_worker_init says so. */
#define LP_ADDR_PATH_MAX 4096

/* A listening address. */
typedef struct lp_addr_s {
  int is_unix;
  char host[64];  /* numeric IPv4 or IPv6 address */
  int port;       /* 0..65535; 0 asks the system for a free port */
  char path[LP_ADDR_PATH_MAX]; /* unix socket path, NUL-terminated */
} lp_addr_t;

/* Parses "HOST:PORT", ":PORT", "PORT", "[IPV6]:PORT" or "unix:PATH" into
 * *out. HOST is a numeric address or "localhost"; an empty or missing HOST
 * is the loopback 127.0.0.1; PATH is 1 to LP_ADDR_PATH_MAX - 1 bytes.
 * Returns 0 or LP_EADDR (*out unspecified). */
int lp_addr_parse(const char *text, lp_addr_t *out);

/* Returns 1 if a only accepts connections from this machine: a unix
 * socket, 127.0.0.0/8 or ::1. 0.0.0.0 and :: (every interface) are not. */
int lp_addr_is_local(const lp_addr_t *a);

/* Formats a as lp_addr_parse reads it ("127.0.0.1:8123", "[::1]:8123",
 * "unix:/tmp/x"). Returns the length, or the length it would need. */
int lp_addr_format(const lp_addr_t *a, char *buf, size_t cap);

#endif
