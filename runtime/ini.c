/*
 * ini.c - see ini.h.
 */
#include "ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return 0;
    return 1;
}

int dt_ini_parse(const char *text, const char *source, dt_ini_cb cb, void *ud)
{
    char *buf = dt_xstrdup(text);
    char section[128] = "";
    int rc = DT_OK, lineno = 0;
    char *save = buf;
    for (char *line = buf; line && rc == DT_OK; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        for (const char *b = line; *b; b++) {
            const unsigned char ch = (unsigned char)*b;
            if ((ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f) {
                rc = dt_err("%s:%d: control byte 0x%02x in column %d: expected a text file", source,
                            lineno, ch, (int)(b - line) + 1);
                break;
            }
        }
        if (rc != DT_OK)
            break;
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e || trim(e + 1)[0] != '\0') {
                rc = dt_err("%s:%d: malformed section header '%s': expected [name]", source, lineno,
                            s);
                break;
            }
            *e = '\0';
            char *name = trim(s + 1);
            if (!valid_name(name) || strlen(name) >= sizeof section) {
                rc = dt_err("%s:%d: bad section name '%s'", source, lineno, name);
                break;
            }
            snprintf(section, sizeof section, "%s", name);
            rc = cb(ud, section, NULL, NULL, source, lineno);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc =
                dt_err("%s:%d: expected 'key = value' or '[section]', got '%s'", source, lineno, s);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        /* strip a trailing comment introduced by whitespace + '#' */
        for (char *h = val; *h; h++)
            if ((*h == '#' || *h == ';') && h > val && isspace((unsigned char)h[-1])) {
                *h = '\0';
                val = trim(val);
                break;
            }
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        } else if (vl == 0) {
            rc = dt_err("%s:%d: key '%s' has no value", source, lineno, key);
            break;
        }
        if (!valid_name(key)) {
            rc = dt_err("%s:%d: bad key name '%s'", source, lineno, key);
            break;
        }
        rc = cb(ud, section, key, val, source, lineno);
    }
    free(buf);
    return rc;
}

char *dt_read_file(const char *path, long max_bytes)
{
    /* a FIFO, directory or device is refused by name without blocking */
    int fd = dt_open_regular(path, "a text file");
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        dt_err("%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    char *buf = NULL;
    long len = 0;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        dt_err("%s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    if (len > max_bytes) {
        dt_err("%s: %ld bytes is too large (at most %ld expected)", path, len, max_bytes);
        goto done;
    }
    buf = dt_xmalloc((size_t)len + 1, 1);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        dt_err("%s: short read", path);
        free(buf);
        buf = NULL;
        goto done;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', (size_t)len)) {
        dt_err("%s: expected a text file, found NUL bytes", path);
        free(buf);
        buf = NULL;
    }
done:
    fclose(f);
    return buf;
}

int dt_ini_parse_file(const char *path, dt_ini_cb cb, void *ud)
{
    char *text = dt_read_file(path, 1 << 20);
    if (!text)
        return DT_ERR;
    int rc = dt_ini_parse(text, path, cb, ud);
    free(text);
    return rc;
}
