/*
 * kernels_agree.c - the kernel instruction set agreed over the ranks, see kernels_agree.h.
 */
#include "kernels_agree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "kernels/conv_dnnl.h"
#include "kernels/isa.h"

int dt_kernels_agree(const dt_config *cfg, MPI_Comm comm)
{
    dt_isa isa = DT_ISA_GENERIC;
    int rc = dt_kern_resolve(cfg->kernels_isa - 1, &isa);
    if (dt_dist_agree(rc, comm) != 0)
        return DT_ERR;
    int mine = (int)isa, lo = mine, hi = mine;
    MPI_Allreduce(&mine, &lo, 1, MPI_INT, MPI_MIN, comm);
    MPI_Allreduce(&mine, &hi, 1, MPI_INT, MPI_MAX, comm);
    rc = dt_kern_select((dt_isa)lo);
    if (dt_dist_agree(rc, comm) != 0)
        return DT_ERR;
    /* kernels.conv, or for auto DTRAIN_KERNELS_CONV (benchmarks); after the ISA: oneDNN is
     * capped at it */
    int conv = cfg->kernels_conv;
    const char *env = getenv("DTRAIN_KERNELS_CONV");
    rc = DT_OK;
    if (conv == DT_CONV_BACKEND_AUTO && env && *env) {
        if (!strcmp(env, "dtrain"))
            conv = DT_CONV_BACKEND_DTRAIN;
        else if (!strcmp(env, "onednn"))
            conv = DT_CONV_BACKEND_ONEDNN;
        else if (strcmp(env, "auto"))
            rc = dt_err("DTRAIN_KERNELS_CONV=%s: expected auto, dtrain or onednn", env);
    }
    if (dt_dist_agree(rc, comm) != 0)
        return DT_ERR;
    dt_dnnl_conv_set(conv);
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (lo != hi && rank == 0) {
        printf("kernels: the ranks chose from %s to %s (kernels.isa, DTRAIN_KERNELS_ISA or their "
               "CPUs); all use the lowest common one, %s\n",
               dt_isa_name((dt_isa)lo), dt_isa_name((dt_isa)hi), dt_isa_name((dt_isa)lo));
        fflush(stdout);
    }
    return DT_OK;
}
