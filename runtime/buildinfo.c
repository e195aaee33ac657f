/*
 * buildinfo.c - see buildinfo.h. "unknown" where a library cannot say.
 */
#include "buildinfo.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "blas.h"

static void trim_line(char *s)
{
    s[strcspn(s, "\r\n")] = '\0';
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

const char *dt_buildinfo_hdf5(void)
{
    static char buf[48];
    if (!buf[0]) {
        unsigned maj = 0, min = 0, rel = 0;
        if (H5get_libversion(&maj, &min, &rel) < 0)
            snprintf(buf, sizeof buf, "unknown");
        else
            snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, rel);
    }
    return buf;
}

const char *dt_buildinfo_mpi(void)
{
    static char buf[MPI_MAX_LIBRARY_VERSION_STRING + 1];
    if (!buf[0]) {
        int len = 0;
        if (MPI_Get_library_version(buf, &len) != MPI_SUCCESS)
            snprintf(buf, sizeof buf, "unknown");
        trim_line(buf);
        if (!buf[0])
            snprintf(buf, sizeof buf, "unknown");
    }
    return buf;
}

const char *dt_buildinfo_openblas(void)
{
    static char buf[256];
    if (!buf[0]) {
        const char *c = openblas_get_config();
        snprintf(buf, sizeof buf, "%s", c ? c : "unknown");
        trim_line(buf);
        if (!buf[0])
            snprintf(buf, sizeof buf, "unknown");
    }
    return buf;
}
