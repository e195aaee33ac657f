/*
 * kernels_agree.c - the kernel instruction set agreed over the ranks, see kernels_agree.h.
 */
#include "kernels_agree.h"

#include <stdio.h>

#include "common.h"
#include "dist.h"
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
