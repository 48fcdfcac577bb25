/* lp_evalframe.h - CPython 3.11: a PEP 523 frame evaluation function that
 * tells the settrace backend when a frame of profiled code starts or
 * resumes, so the trace function can be installed only while profiled
 * frames run (docs/performance.md, "code not profiled"). Elsewhere these
 * are no-ops that report the hook as unavailable. GIL held throughout. */
#ifndef LP_EVALFRAME_H
#define LP_EVALFRAME_H

#include "lp_compat.h"

/* Called with the GIL, before a frame of marked code is evaluated (first
 * entry or resumption, never a generator's creation pass). An exception
 * may be pending (throw()): the callback must leave it as it is. */
typedef void (*lp_eval_cb)(PyThreadState *ts);

/* Installs the frame evaluation function with cb. Returns 1 when it is
 * installed (or already was), 0 when another one holds the slot (leave
 * it alone), -1 with an exception on error. */
int lp_eval_on(lp_eval_cb cb);

/* Removes it, if the slot still holds it. */
void lp_eval_off(void);

/* Marks code (on != 0) as profiled, or unmarks it. Returns 0 or -1 with an
 * exception. */
int lp_eval_mark(PyObject *code, int on);

#endif
