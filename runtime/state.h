/*
 * state.h - dt_state, the one table of resumable state (ARCHITECTURE.md invariant 7).
 *
 * Every module that holds something a resume needs registers it here once: a checkpoint item name
 * (the dataset path in the file, "optim/step"), its dtype and shape, a pointer to the memory that
 * holds it, its scope and a few value rules. Save, load (with validation) and the broadcast that
 * follows a resume are each one loop over the table; nothing else lists resumable state.
 *
 * Scopes:
 *   DT_STATE_SHARED    every rank holds the same value (weights, optimizer buffers, counters):
 *                      rank 0 saves it, rank 0 loads it, a resume broadcasts it to every rank.
 *   DT_STATE_RANK0     only rank 0 holds it (SWA average, epoch history, the epoch's global sums):
 *                      saved and loaded by rank 0, never broadcast (a variable row count is).
 *   DT_STATE_PER_RANK  each rank holds its own value of `dims` (RNG stream counters): gathered into
 *                      (world, dims...) on save; on load checked for shape only (world may differ)
 *                      and left in the staging buffer, since these values are derived, not restored.
 *
 * Loading is staged: dt_state_read reads every item into buffers owned by the table and checks
 * presence, dtype, shape and the item's value rules; the caller may check relations between items
 * (dt_state_staged); only dt_state_commit copies into the registered memory. So a checkpoint that
 * fails validation leaves the caller's state untouched, and `--resume auto` can try an older one.
 *
 * Errors: dt_state_read returns DT_ERR after ONE message naming the checkpoint and the item:
 *   "PATH: no item 'train/step' in checkpoint"                   (dt_ck_read's messages)
 *   "PATH: train/world_size = 0: expected an integer >= 1"
 *   "PATH: model/fc1.weight[17] = nan: expected finite values"
 *   "PATH: metrics/epochs has 5 rows: expected at most 3"
 * Misuse (duplicate names, unknown names, NULL pointers) is a bug and asserts.
 */
#ifndef DT_STATE_H
#define DT_STATE_H

#include <mpi.h>
#include <stdint.h>

#include "ckpt.h"

typedef enum { DT_STATE_SHARED, DT_STATE_RANK0, DT_STATE_PER_RANK } dt_state_scope;

/* Item flags (value rules checked on load, and the optional bit). */
enum {
    DT_STATE_OPTIONAL = 1 << 0, /* absent from a checkpoint: keep the current value, no error */
    DT_STATE_FINITE = 1 << 1,   /* float items: every value finite */
    DT_STATE_NONNEG = 1 << 2,   /* every value >= 0 */
    DT_STATE_POSITIVE = 1 << 3  /* every value > 0 (integers: >= 1) */
};
/* Integer items flagged NONNEG or POSITIVE are counters (steps, rows, skipped steps): a value above
 * 2^53 is refused as impossible (no run counts that far), so code that counts on from a loaded
 * counter never overflows. */
#define DT_STATE_COUNT_MAX 9007199254740992.0

typedef struct dt_state_item {
    char name[DT_CK_NAME_MAX];
    dt_ck_dtype dtype;
    int ndim;
    int64_t dims[DT_CK_MAX_DIM]; /* with rows: dims[0] is the capacity (most rows) */
    void *ptr;                   /* the registered memory (float, double or int64_t per dtype) */
    int64_t *rows;               /* NULL, or the current row count (dims[0] of the saved item) */
    dt_state_scope scope;
    unsigned flags;
    /* staging (owned): the values read by dt_state_read, or gathered by dt_state_gather */
    void *stage;
    int64_t stage_dims[DT_CK_MAX_DIM];
    int present; /* 1 once read (an absent optional item stays 0) */
} dt_state_item;

typedef struct dt_state {
    dt_state_item *items;
    int n, cap;
    char path[4096]; /* the checkpoint of the last dt_state_read */
} dt_state;

void dt_state_init(dt_state *s);
/* Frees the table and its staging buffers (not the registered memory). NULL is a no-op. */
void dt_state_free(dt_state *s);

/* Registers an item: ndim (0..4) dims, C order, at ptr. The name follows dt_ck_add's rules and is
 * unique in the table. For DT_STATE_PER_RANK, dims are one rank's part. */
void dt_state_add(dt_state *s, const char *name, dt_ck_dtype dtype, int ndim, const int64_t *dims,
                  void *ptr, dt_state_scope scope, unsigned flags);
/* The same for an item with a variable number of rows: dims[0] is the capacity, *rows the count
 * saved; a load accepts 0..dims[0] rows and sets *rows. */
void dt_state_add_rows(dt_state *s, const char *name, dt_ck_dtype dtype, int ndim,
                       const int64_t *dims, void *ptr, int64_t *rows, dt_state_scope scope,
                       unsigned flags);

/* The item `name`, or NULL. */
dt_state_item *dt_state_find(const dt_state *s, const char *name);

/* ---- saving ---- */

/* Collective: gathers every DT_STATE_PER_RANK item on rank 0. Call before dt_state_write. */
void dt_state_gather(dt_state *s, MPI_Comm comm);
/* Rank 0: adds every item to w, in registration order (the data is referenced: keep it unchanged
 * until dt_ck_commit returns). */
void dt_state_write(const dt_state *s, dt_ck_writer *w);

/* ---- loading ---- */

/* Reads every item of r into the staging buffers and checks it (see the header). Not
 * collective. Returns 0 or DT_ERR (one message, naming dt_ck_path(r) and the item). */
int dt_state_read(dt_state *s, dt_ck_reader *r);
/* The staged values of item `name` after a successful dt_state_read (NULL when absent); *numel
 * (may be NULL) receives their count. The item must be registered. */
const void *dt_state_staged(const dt_state *s, const char *name, int64_t *numel);
/* Copies the staged values of every read SHARED and RANK0 item into its memory (and row count)
 * and frees their staging buffers (dt_state_staged then returns NULL for them; per-rank items
 * stay staged). */
void dt_state_commit(dt_state *s);
/* Collective: rank 0's values of every SHARED item (and every row count) to all ranks. */
void dt_state_bcast(dt_state *s, MPI_Comm comm);

#endif
