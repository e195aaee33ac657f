/*
 * state.c - see state.h.
 */
#include "state.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"

void dt_state_init(dt_state *s) { memset(s, 0, sizeof *s); }

void dt_state_free(dt_state *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        free(s->items[i].stage);
    free(s->items);
    memset(s, 0, sizeof *s);
}

static int64_t numel_of(int ndim, const int64_t *dims)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= dims[d];
    return n;
}

void dt_state_add_rows(dt_state *s, const char *name, dt_ck_dtype dtype, int ndim,
                       const int64_t *dims, void *ptr, int64_t *rows, dt_state_scope scope,
                       unsigned flags)
{
    DT_ASSERT(name && name[0] && strlen(name) < DT_CK_NAME_MAX);
    DT_ASSERT(ndim >= 0 && ndim <= DT_CK_MAX_DIM && (ndim == 0 || dims));
    DT_ASSERT(!rows || (ndim >= 1 && scope != DT_STATE_PER_RANK));
    DT_ASSERT(!rows || *rows <= dims[0]);
    DT_ASSERT(scope != DT_STATE_PER_RANK || ndim < DT_CK_MAX_DIM);
    DT_ASSERT(!dt_state_find(s, name));
    s->items = dt_xgrow(s->items, s->n, &s->cap, sizeof *s->items);
    dt_state_item *it = &s->items[s->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->dtype = dtype;
    it->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        DT_ASSERT(dims[d] >= 0);
        it->dims[d] = dims[d];
    }
    DT_ASSERT(ptr || numel_of(ndim, dims) == 0 || scope == DT_STATE_RANK0);
    it->ptr = ptr;
    it->rows = rows;
    it->scope = scope;
    it->flags = flags;
}

void dt_state_add(dt_state *s, const char *name, dt_ck_dtype dtype, int ndim, const int64_t *dims,
                  void *ptr, dt_state_scope scope, unsigned flags)
{
    dt_state_add_rows(s, name, dtype, ndim, dims, ptr, NULL, scope, flags);
}

dt_state_item *dt_state_find(const dt_state *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0)
            return &s->items[i];
    return NULL;
}

/* The shape saved now: dims with the current row count. */
static void saved_dims(const dt_state_item *it, int64_t *dims)
{
    for (int d = 0; d < it->ndim; d++)
        dims[d] = it->dims[d];
    if (it->rows)
        dims[0] = *it->rows;
}

/* ---- saving ---- */

void dt_state_gather(dt_state *s, MPI_Comm comm)
{
    int rank, world;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &world);
    for (int i = 0; i < s->n; i++) {
        dt_state_item *it = &s->items[i];
        if (it->scope != DT_STATE_PER_RANK)
            continue;
        size_t bytes = (size_t)numel_of(it->ndim, it->dims) * dt_ck_dtype_size(it->dtype);
        DT_ASSERT(bytes <= (size_t)INT32_MAX / (size_t)world);
        free(it->stage);
        it->stage = rank == 0 ? dt_xmalloc((size_t)world * bytes + 1, 1) : NULL;
        dt_dist_gather_bytes(it->ptr, it->stage, bytes, DT_PHASE_CHECKPOINT, comm);
        it->stage_dims[0] = world;
        for (int d = 0; d < it->ndim; d++)
            it->stage_dims[d + 1] = it->dims[d];
        it->present = rank == 0;
    }
}

void dt_state_write(const dt_state *s, dt_ck_writer *w)
{
    for (int i = 0; i < s->n; i++) {
        const dt_state_item *it = &s->items[i];
        if (it->scope == DT_STATE_PER_RANK) {
            DT_ASSERT(it->present); /* dt_state_gather first */
            dt_ck_add(w, it->name, it->dtype, it->ndim + 1, it->stage_dims, it->stage);
        } else {
            int64_t dims[DT_CK_MAX_DIM];
            saved_dims(it, dims);
            dt_ck_add(w, it->name, it->dtype, it->ndim, dims, it->ptr);
        }
    }
}

/* ---- loading ---- */

static double value_at(const dt_state_item *it, int64_t k)
{
    switch (it->dtype) {
    case DT_CK_F32: return ((const float *)it->stage)[k];
    case DT_CK_F64: return ((const double *)it->stage)[k];
    case DT_CK_I64: return (double)((const int64_t *)it->stage)[k];
    case DT_CK_U8: return ((const unsigned char *)it->stage)[k];
    }
    return 0.0;
}

/* The item's value rules over its staged values. */
static int check_values(const dt_state *s, const dt_state_item *it, int64_t n)
{
    const int isint = it->dtype == DT_CK_I64 || it->dtype == DT_CK_U8;
    for (int64_t k = 0; k < n; k++) {
        char where[DT_CK_NAME_MAX + 32];
        const char *what = NULL;
        double v = value_at(it, k);
        if ((it->flags & DT_STATE_FINITE) && !isint && !isfinite(v))
            what = "finite values";
        else if ((it->flags & DT_STATE_POSITIVE) && !(v > 0))
            what = isint ? "an integer >= 1" : "a value > 0";
        else if ((it->flags & DT_STATE_NONNEG) && !(v >= 0))
            what = isint ? "an integer >= 0" : "a value >= 0";
        else if (isint && (it->flags & (DT_STATE_POSITIVE | DT_STATE_NONNEG)) &&
                 v > DT_STATE_COUNT_MAX)
            /* a counter no run reaches; bounded so that counting on from it cannot overflow */
            what = "at most 2^53";
        if (!what)
            continue;
        if (it->ndim == 0)
            snprintf(where, sizeof where, "%s", it->name);
        else
            snprintf(where, sizeof where, "%s[%lld]", it->name, (long long)k);
        if (it->dtype == DT_CK_I64)
            return dt_err("%s: %s = %lld: expected %s", s->path, where,
                          (long long)((const int64_t *)it->stage)[k], what);
        if (isint)
            return dt_err("%s: %s = %.0f: expected %s", s->path, where, v, what);
        return dt_err("%s: %s = %g: expected %s", s->path, where, v, what);
    }
    return DT_OK;
}

static int read_item(dt_state *s, dt_state_item *it, dt_ck_reader *r)
{
    const char *path = dt_ck_path(r);
    const dt_ck_item *ck = dt_ck_find(r, it->name);
    it->present = 0;
    if (!ck && (it->flags & DT_STATE_OPTIONAL))
        return DT_OK;
    int64_t dims[DT_CK_MAX_DIM] = {0};
    int ndim = it->ndim;
    for (int d = 0; d < it->ndim; d++)
        dims[d] = it->dims[d];
    if (ck && it->rows && ck->ndim == it->ndim) {
        if (ck->dims[0] > it->dims[0])
            return dt_err("%s: %s has %lld rows: expected at most %lld", path, it->name,
                          (long long)ck->dims[0], (long long)it->dims[0]);
        dims[0] = ck->dims[0];
    } else if (ck && it->scope == DT_STATE_PER_RANK) {
        /* (world, dims...) of the writing run: any world >= 1 */
        ndim = it->ndim + 1;
        dims[0] = ck->ndim == ndim && ck->dims[0] >= 1 ? ck->dims[0] : 1;
        for (int d = 0; d < it->ndim; d++)
            dims[d + 1] = it->dims[d];
    }
    int64_t n = numel_of(ndim, dims);
    free(it->stage);
    it->stage = dt_xmalloc((size_t)n * dt_ck_dtype_size(it->dtype) + 1, 1);
    /* dt_ck_read names the file and the item: missing, wrong dtype, wrong shape, checksum */
    if (dt_ck_read(r, it->name, it->dtype, ndim, dims, it->stage) != 0)
        return DT_ERR;
    memcpy(it->stage_dims, dims, sizeof dims);
    it->present = 1;
    return check_values(s, it, n);
}

int dt_state_read(dt_state *s, dt_ck_reader *r)
{
    snprintf(s->path, sizeof s->path, "%s", dt_ck_path(r));
    for (int i = 0; i < s->n; i++)
        s->items[i].present = 0;
    for (int i = 0; i < s->n; i++)
        if (read_item(s, &s->items[i], r) != 0)
            return DT_ERR;
    return DT_OK;
}

const void *dt_state_staged(const dt_state *s, const char *name, int64_t *numel)
{
    const dt_state_item *it = dt_state_find(s, name);
    DT_ASSERT(it);
    int ndim = it->scope == DT_STATE_PER_RANK ? it->ndim + 1 : it->ndim;
    if (numel)
        *numel = it->present ? numel_of(ndim, it->stage_dims) : 0;
    return it->present ? it->stage : NULL;
}

void dt_state_commit(dt_state *s)
{
    for (int i = 0; i < s->n; i++) {
        dt_state_item *it = &s->items[i];
        if (!it->present || it->scope == DT_STATE_PER_RANK)
            continue;
        int64_t n = numel_of(it->ndim, it->stage_dims);
        if (it->rows)
            *it->rows = it->stage_dims[0];
        if (n > 0) {
            DT_ASSERT(it->ptr);
            memcpy(it->ptr, it->stage, (size_t)n * dt_ck_dtype_size(it->dtype));
        }
        /* the staging copy of the model is as large as the model: not kept for the run */
        free(it->stage);
        it->stage = NULL;
        it->present = 0;
    }
}

void dt_state_bcast(dt_state *s, MPI_Comm comm)
{
    for (int i = 0; i < s->n; i++) {
        dt_state_item *it = &s->items[i];
        if (it->rows)
            MPI_Bcast(it->rows, 1, MPI_INT64_T, 0, comm);
        if (it->scope != DT_STATE_SHARED)
            continue;
        int64_t dims[DT_CK_MAX_DIM];
        saved_dims(it, dims);
        size_t n = (size_t)numel_of(it->ndim, dims);
        if (it->dtype == DT_CK_F32) {
            dt_dist_bcast(it->ptr, n, comm);
            continue;
        }
        /* the other items are counters and small arrays */
        size_t bytes = n * dt_ck_dtype_size(it->dtype);
        DT_ASSERT(bytes <= (size_t)INT32_MAX);
        MPI_Bcast(it->ptr, (int)bytes, MPI_BYTE, 0, comm);
    }
}
