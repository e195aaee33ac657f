/*
 * tools.c - see tools.h: option splitting, temporary files and gnuplot for dtrain's tool
 * subcommands (schedule, lr-find).
 */
#include "tools.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

int dt_tool_split_args(int argc, char **argv, int first, dt_tool_opt *opts, int nopts, char **rest,
                       int *nrest)
{
    int n = 0;
    for (int i = 0; i < first && i < argc; i++)
        rest[n++] = argv[i];
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        int k;
        for (k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == len && strncmp(a, opts[k].name, len) == 0)
                break;
        if (k < nopts) {
            if (eq) {
                opts[k].val = eq + 1;
            } else {
                if (i + 1 >= argc)
                    return dt_err("%s: expected a value", a);
                opts[k].val = argv[++i];
            }
            continue;
        }
        rest[n++] = argv[i];
        if (a[0] == '-' && !eq && i + 1 < argc)
            rest[n++] = argv[++i];
    }
    *nrest = n;
    return DT_OK;
}

void dt_tool_gp_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

FILE *dt_tool_temp_file(char *path, size_t size, const char *what)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    int n = snprintf(path, size, "%s/dtrain-%s.XXXXXX", dir, what);
    if (n < 0 || (size_t)n >= size) {
        dt_err("temporary file name too long (TMPDIR = %s)", dir);
        return NULL;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        dt_err("%s: cannot create a temporary file: %s", path, strerror(errno));
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        dt_err("%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
    }
    return f;
}

int dt_tool_gnuplot(const char *script, const char *png)
{
    const char *prog = getenv("DT_GNUPLOT");
    if (!prog || !*prog)
        prog = "gnuplot";
    char *args[3] = {(char *)prog, (char *)script, NULL};
    extern char **environ;
    pid_t pid;
    int e = posix_spawnp(&pid, prog, NULL, NULL, args, environ);
    if (e == ENOENT) {
        dt_err("%s: gnuplot not found", prog);
        return DT_TOOL_NO_GNUPLOT;
    }
    if (e != 0)
        return dt_err("%s: cannot start gnuplot: %s", prog, strerror(e));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return dt_err("%s: waitpid: %s", prog, strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        dt_err("%s: gnuplot not found", prog);
        return DT_TOOL_NO_GNUPLOT;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return dt_err("%s: gnuplot failed drawing %s (%s %d)", prog, png,
                      WIFEXITED(status) ? "exit status" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    struct stat st;
    if (stat(png, &st) != 0 || st.st_size == 0)
        return dt_err("%s: gnuplot exited 0 but wrote no image", png);
    return DT_OK;
}
