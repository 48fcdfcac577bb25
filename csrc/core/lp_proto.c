#include "lp_proto.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "lp_error.h"

int lp_proto_parse(const char *data, size_t len, lp_request_t *out) {
  static const struct {
    const char *text;
    lp_request_t req;
  } verbs[] = {{"SNAPSHOT", LP_REQ_SNAPSHOT}, {"PING", LP_REQ_PING}};
  const size_t mlen = sizeof(LP_PROTO_MAGIC) - 1;
  const char *nl;
  size_t line, i;
  size_t scan = len < LP_PROTO_MAX_REQUEST ? len : LP_PROTO_MAX_REQUEST;
  if (len == 0)
    return 0;
  /* Reject early what can never become a request. */
  if (memcmp(data, LP_PROTO_MAGIC, scan < mlen ? scan : mlen) != 0)
    return LP_EPROTO;
  if ((nl = memchr(data, '\n', scan)) == NULL)
    return len < LP_PROTO_MAX_REQUEST ? 0 : LP_EPROTO;
  line = (size_t)(nl - data);
  if (line > 0 && data[line - 1] == '\r')
    line--;
  if (line < mlen + 1 || data[mlen] != ' ')
    return LP_EPROTO;
  for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
    size_t vlen = strlen(verbs[i].text);
    if (line == mlen + 1 + vlen &&
        memcmp(data + mlen + 1, verbs[i].text, vlen) == 0) {
      *out = verbs[i].req;
      return (int)(nl - data) + 1;
    }
  }
  return LP_EPROTO;
}

size_t lp_proto_ok(char *buf, size_t cap, uint64_t n) {
  int w = snprintf(buf, cap, LP_PROTO_MAGIC " OK %llu\n",
                   (unsigned long long)n);
  return w < 0 ? 0 : (size_t)w < cap ? (size_t)w : cap - 1;
}

size_t lp_proto_err(char *buf, size_t cap, const char *code,
                    const char *message) {
  int w = snprintf(buf, cap, LP_PROTO_MAGIC " ERR %s %s", code, message);
  size_t n;
  if (w < 0 || cap < 2)
    return 0;
  n = (size_t)w < cap - 1 ? (size_t)w : cap - 2; /* room for the newline */
  buf[n++] = '\n';
  buf[n] = '\0';
  return n;
}

/* Parses a decimal port, 0..65535, the whole of s. */
static int parse_port(const char *s, int *out) {
  long v = 0;
  if (*s == '\0')
    return LP_EADDR;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return LP_EADDR;
    v = v * 10 + (*s - '0');
    if (v > 65535)
      return LP_EADDR;
  }
  *out = (int)v;
  return 0;
}

/* libuv reads at most 39 bytes of an IPv6 address before a "%zone" (it
 * truncates the rest), so a longer one would be accepted with junk in it,
 * or bind another address than the one written: refuse it. */
#define IPV6_MAX_BEFORE_ZONE 39

static int numeric_host(const char *h) {
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  const char *zone = strchr(h, '%');
  if (zone != NULL && zone - h > IPV6_MAX_BEFORE_ZONE)
    return 0;
  return uv_ip4_addr(h, 0, &a4) == 0 || uv_ip6_addr(h, 0, &a6) == 0;
}

int lp_addr_parse(const char *text, lp_addr_t *out) {
  const char *colon, *host;
  size_t hlen;
  memset(out, 0, sizeof(*out));
  if (text == NULL)
    return LP_EADDR;
  if (strncmp(text, "unix:", 5) == 0) {
    size_t n = strlen(text + 5);
    if (n == 0 || n >= sizeof(out->path))
      return LP_EADDR;
    out->is_unix = 1;
    memcpy(out->path, text + 5, n + 1);
    return 0;
  }
  if (text[0] == '[') { /* [IPv6]:PORT */
    const char *close = strchr(text, ']');
    if (close == NULL || close[1] != ':')
      return LP_EADDR;
    host = text + 1;
    hlen = (size_t)(close - host);
    colon = close + 1;
  } else if ((colon = strrchr(text, ':')) != NULL) {
    if (memchr(text, ':', (size_t)(colon - text)) != NULL)
      return LP_EADDR; /* a bare IPv6 address: needs brackets */
    host = text;
    hlen = (size_t)(colon - text);
  } else { /* PORT alone */
    host = "";
    hlen = 0;
    colon = NULL;
  }
  if (parse_port(colon != NULL ? colon + 1 : text, &out->port) != 0 ||
      hlen >= sizeof(out->host))
    return LP_EADDR;
  if (hlen == 0 || (hlen == 9 && memcmp(host, "localhost", 9) == 0)) {
    strcpy(out->host, "127.0.0.1");
    return 0;
  }
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  return numeric_host(out->host) ? 0 : LP_EADDR;
}

int lp_addr_is_local(const lp_addr_t *a) {
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 1};
  if (a->is_unix)
    return 1;
  if (uv_ip4_addr(a->host, 0, &a4) == 0)
    return ((const unsigned char *)&a4.sin_addr)[0] == 127;
  if (uv_ip6_addr(a->host, 0, &a6) == 0)
    return memcmp(&a6.sin6_addr, loop6, 16) == 0;
  return 0;
}

int lp_addr_format(const lp_addr_t *a, char *buf, size_t cap) {
  if (a->is_unix)
    return snprintf(buf, cap, "unix:%s", a->path);
  if (strchr(a->host, ':') != NULL)
    return snprintf(buf, cap, "[%s]:%d", a->host, a->port);
  return snprintf(buf, cap, "%s:%d", a->host, a->port);
}
