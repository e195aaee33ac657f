/*
 * cmd_inspect.c - `dtrain inspect CHECKPOINT.h5`: verifies a checkpoint (every dataset's checksum,
 * dt_ck_open) and prints what it holds: its attributes (model, data, step, versions, ...), every
 * item with its type and shape, the model's size, the last epoch's metrics and the configuration
 * of its run. Rank 0 reads and prints; a bad file is one message and exit 1 on every rank.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "commands.h"
#include "common.h"
#include "dist.h"

int dt_cmd_inspect(int argc, char **argv, int world)
{
    (void)world;
    if (argc != 3) {
        dt_err("inspect: expected one checkpoint file (dtrain inspect FILE)");
        return dt_dist_agree(DT_ERR, MPI_COMM_WORLD) == 0 ? 0 : 1;
    }
    dt_ck_reader *r = NULL;
    int rc = dt_ck_open(&r, argv[2]);
    if (dt_dist_agree(rc, MPI_COMM_WORLD) != 0)
        return 1;
    if (dt_rank == 0) {
        printf("%s: verified (every dataset's checksum matches)\n", argv[2]);
        const char *keys[] = {"model",          "data",          "optim",        "step",
                              "epochs_done",    "world_size",    "global_batch", "seed",
                              "dtrain_version", "dtrain_commit", "mpi_version",  "openblas_version",
                              "hdf5_version",   "kernels_isa"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *v = dt_ck_get_attr(r, keys[i]);
            if (v)
                printf("  %-16s %s\n", keys[i], v);
        }
        size_t params = 0;
        int n = dt_ck_count(r);
        printf("items (%d):\n", n);
        for (int i = 0; i < n; i++) {
            const dt_ck_item *it = dt_ck_item_at(r, i);
            char shape[96];
            dt_ck_format_shape(shape, sizeof shape, it->ndim, it->dims);
            printf("  %-40s %-8s %s\n", it->name, dt_ck_dtype_name(it->dtype), shape);
            if (strncmp(it->name, "model/", 6) == 0 && it->dtype == DT_CK_F32)
                params += (size_t)it->numel;
        }
        printf("model tensors: %zu values\n", params);
        const dt_ck_item *h = dt_ck_find(r, "metrics/epochs");
        if (h && h->ndim == 2 && h->dims[0] > 0) {
            double *rows = dt_xmalloc((size_t)h->numel, sizeof *rows);
            if (dt_ck_read(r, "metrics/epochs", DT_CK_F64, 2, h->dims, rows) == 0) {
                const double *last = rows + (h->dims[0] - 1) * h->dims[1];
                printf("last epoch: epoch %.0f step %.0f train_loss %.4f train_acc %.2f "
                       "test_loss %.4f test_acc %.2f lr %.6g\n",
                       last[0], last[1], last[2], last[3], last[4], last[5], last[6]);
            }
            free(rows);
        }
        const char *config = dt_ck_get_attr(r, "config");
        if (config)
            printf("# configuration of the run:\n%s", config);
    }
    dt_ck_close(r);
    return 0;
}
