/*
 * ini.h - the INI-style text format shared by config files (-c FILE) and model descriptions
 * (models/NAME.cfg, darknet-style):
 *
 *   # comment            ; comment
 *   [section]            a section header; the same name may repeat (one per layer in a model)
 *   key = value          leading/trailing blanks trimmed; value may be empty only if quoted ""
 *
 * The parser calls back once per section header (key == NULL) and once per key, in file order.
 */
#ifndef DT_INI_H
#define DT_INI_H

/* Returns 0 to go on, or DT_ERR (message recorded with dt_err) to stop parsing. */
typedef int (*dt_ini_cb)(void *ud, const char *section, const char *key, const char *value,
                         const char *source, int line);

/* Parses text (NUL-terminated); `source` names it in messages ("models/mlp.cfg"). Syntax errors
 * are reported as "SOURCE:LINE: ..." Returns 0 or DT_ERR. */
int dt_ini_parse(const char *text, const char *source, dt_ini_cb cb, void *ud);

/* Reads a whole file and parses it. A missing/unreadable file is an error naming the path. */
int dt_ini_parse_file(const char *path, dt_ini_cb cb, void *ud);

/* Reads a whole file into a NUL-terminated heap buffer (free()). Returns NULL with dt_err set. */
char *dt_read_file(const char *path, long max_bytes);

#endif
