/*
 * buildinfo.h - the versions of the libraries dtrain runs with, for the root attributes of a
 * checkpoint and `dtrain inspect`. dtrain's own version and commit are DT_VERSION and dt_commit
 * (common.h). Each function returns a static string, valid for the life of the process.
 */
#ifndef DT_BUILDINFO_H
#define DT_BUILDINFO_H

/* "1.10.8": the HDF5 library linked at run time (H5get_libversion). */
const char *dt_buildinfo_hdf5(void);
/* First line of MPI_Get_library_version ("Open MPI v4.1.4, package: ..."); callable before
 * MPI_Init. */
const char *dt_buildinfo_mpi(void);
/* openblas_get_config() ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"). */
const char *dt_buildinfo_openblas(void);

#endif
