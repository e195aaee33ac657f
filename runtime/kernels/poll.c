/* poll.c - the progress hook (poll.h) */
#include "poll.h"

#include <stddef.h>

dt_poll_fn dt_poll_hook = NULL;
_Thread_local int dt_poll_here = 0;

void dt_poll_set(dt_poll_fn fn)
{
    dt_poll_hook = fn;
    dt_poll_here = fn != NULL;
}

dt_grad_done_fn dt_grad_done_hook = NULL;
size_t dt_grad_done_panel = 0;
_Thread_local int dt_grad_done_here = 0;

void dt_grad_done_set(dt_grad_done_fn fn, size_t panel)
{
    dt_grad_done_hook = fn;
    dt_grad_done_panel = fn ? panel : 0;
    dt_grad_done_here = fn != NULL;
}
