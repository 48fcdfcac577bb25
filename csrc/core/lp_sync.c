#include "lp_sync.h"

#include "lp_error.h"

int lp_sync_init(lp_sync_t *s) {
  s->seq = 0;
  s->pause = 0;
  s->ready = 0;
  if (uv_mutex_init(&s->mutex) != 0)
    return LP_ENOMEM;
  if (uv_cond_init(&s->cond) != 0) {
    uv_mutex_destroy(&s->mutex);
    return LP_ENOMEM;
  }
  s->ready = 1;
  return 0;
}

void lp_sync_close(lp_sync_t *s) {
  if (!s->ready)
    return;
  uv_cond_destroy(&s->cond);
  uv_mutex_destroy(&s->mutex);
  s->ready = 0;
}

void lp__sync_wait(lp_sync_t *s) {
  uv_mutex_lock(&s->mutex);
  while (__atomic_load_n(&s->pause, __ATOMIC_RELAXED))
    uv_cond_wait(&s->cond, &s->mutex);
  uv_mutex_unlock(&s->mutex);
}
