#include "lp_error.h"

const char *lp_strerror(int err) {
  switch (err) {
  case LP_OK: return "success";
#define XX(code, msg) case LP_E##code: return msg;
  LP_ERRNO_MAP(XX)
#undef XX
  default: return "unknown error";
  }
}

const char *lp_err_name(int err) {
  switch (err) {
  case LP_OK: return "LP_OK";
#define XX(code, _) case LP_E##code: return "LP_E" #code;
  LP_ERRNO_MAP(XX)
#undef XX
  default: return "LP_UNKNOWN";
  }
}
