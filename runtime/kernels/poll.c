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
