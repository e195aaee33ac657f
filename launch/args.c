/*
 * args.c - see args.h. One table of long options drives both the parser and the help text:
 * each long option is a shorthand for one configuration key (--lr X is --set optim.lr=X).
 */
#include "args.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "config.h"

/* The long options, in --help order: the option, its value's name, the key it sets, a short
 * description. */
static const struct {
    const char *opt, *arg, *key, *help;
} long_opts[] = {
    {"--model", "NAME|FILE", "model", "model"},
    {"--data", "NAME", "data.name", "dataset"},
    {"--data-dir", "DIR", "data.dir", "dataset folder"},
    {"--epochs", "N", "train.epochs", "epochs"},
    {"--batch-size", "N", "train.batch_size", "batch per rank"},
    {"--lr", "X", "optim.lr", "learning rate"},
    {"--momentum", "X", "optim.momentum", "SGD momentum"},
    {"--weight-decay", "X", "optim.weight_decay", "weight decay"},
    {"--seed", "N", "seed", "random seed"},
    {"--threads", "N", "threads", "threads per rank (auto: from the CPU affinity mask)"},
    {"--optim", "NAME", "optim.name", "optimizer"},
    {"--sched", "NAME", "sched.kind", "lr schedule"},
    {"--ckpt-dir", "DIR", "ckpt.dir", "checkpoints"},
    {"--resume", "auto|FILE", "ckpt.resume",
     "resume from the newest good checkpoint in ckpt.dir, or FILE"},
};
enum { N_LONG_OPTS = sizeof long_opts / sizeof long_opts[0] };

void dt_args_help(FILE *f)
{
    fprintf(f, "train options (applied after -c files, in command-line order):\n"
               "  -c, --config FILE     INI config file (repeatable; `[section]` + `key = value`)\n"
               "  --set KEY=VALUE       set any key below, e.g. --set optim.nesterov=true\n");
    for (int k = 0; k < N_LONG_OPTS; k++) {
        char opt[64];
        snprintf(opt, sizeof opt, "%s %s", long_opts[k].opt, long_opts[k].arg);
        fprintf(f, "  %-21s %-15s (%s)\n", opt, long_opts[k].help, long_opts[k].key);
    }
    fprintf(f, "\n");
    dt_config_help(f);
}

int dt_parse_args(dt_config *cfg, int argc, char **argv, int first)
{
    return dt_parse_args_on(cfg, NULL, NULL, argc, argv, first);
}

/* The -c/--config files of argv[first..argc), in order. */
static int load_config_files(dt_config *cfg, int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return dt_err("%s: expected a config file path", argv[i]);
            if (dt_config_load(cfg, argv[++i]) != 0)
                return DT_ERR;
        }
    }
    return DT_OK;
}

/* --set KEY=VALUE, the value in text. */
static int set_pair(dt_config *cfg, const char *text)
{
    char kv[1024];
    snprintf(kv, sizeof kv, "%s", text);
    char *eq = strchr(kv, '=');
    if (!eq)
        return dt_err("--set %s: expected KEY=VALUE", kv);
    *eq = '\0';
    return dt_config_set(cfg, kv, eq + 1, "--set");
}

/* A long option at argv[*i]: "--opt VALUE" (*i advances past the value) or "--opt=VALUE". */
static int set_long_opt(dt_config *cfg, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    char name[64];
    const char *val = NULL;
    const char *eq = strchr(a, '=');
    snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
    int k;
    for (k = 0; k < N_LONG_OPTS; k++)
        if (strcmp(name, long_opts[k].opt) == 0)
            break;
    if (k == N_LONG_OPTS)
        return dt_err("unknown option '%s' (see dtrain --help)", a);
    if (eq) {
        val = eq + 1;
    } else {
        if (*i + 1 >= argc)
            return dt_err("%s: expected a value", a);
        val = argv[++*i];
    }
    return dt_config_set(cfg, long_opts[k].key, val, name);
}

int dt_parse_args_on(dt_config *cfg, const char *base, const char *base_source, int argc,
                     char **argv, int first)
{
    dt_config_defaults(cfg);
    if (base && dt_config_load_text(cfg, base, base_source) != 0)
        return DT_ERR;
    dt_config_forget_given(cfg); /* a base (a checkpoint's) is not the user's choice */
    if (load_config_files(cfg, argc, argv, first) != 0)
        return DT_ERR;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        int rc;
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "--set") == 0) {
            if (i + 1 >= argc)
                return dt_err("--set: expected KEY=VALUE");
            rc = set_pair(cfg, argv[++i]);
        } else {
            rc = set_long_opt(cfg, argc, argv, &i);
        }
        if (rc != 0)
            return DT_ERR;
    }
    return dt_config_resolve(cfg);
}
