# Sourced by make targets and tests: environment for running Open MPI on a workstation or CI box.
# - root (containers, CI) needs Open MPI's explicit permission;
# - more ranks than cores need --oversubscribe; 1 BLAS thread per rank unless told otherwise.
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
# No InfiniBand/UCX probing noise on a single host.
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader,tcp}"
export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}"
DT_MPIRUN_FLAGS="--oversubscribe --bind-to none"
