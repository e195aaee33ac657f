#!/bin/sh
# check-structure.sh - the C tree's structural limits (issue 11; run by `make lint`):
#   - no circle between the modules of runtime/ and launch/ (a module: a.c and a.h, by path, so
#     runtime/layers/conv.c and .h are module runtime/layers/conv). Edge a -> b when a's .c or .h
#     includes b.h, or uses (in a function body, an initializer or a macro) a function or global
#     defined in b.c: a header that only declares functions defined elsewhere (dataset.h for the
#     readers, commands.h for main.c) would hide a call-back circle from the includes alone.
#     Each circle is printed with the include or the symbol behind every edge;
#   - no .c/.h file over 1,200 lines (runtime/ launch/ tests/ bench/, recursively);
#   - no function over 100 lines (signature to closing brace) unless scripts/long-functions.txt
#     lists it ("FILE FUNCTION REASON...", one a line, # comments); entries that no longer match
#     a long function are reported so the list only shrinks.
# Circles and long files fail unless LINT_STRICT=0 (then they are printed as warnings); a long
# function not in the list always fails.
# The C scanner is deliberately simple (comments, strings and preprocessor lines stripped, braces
# counted): it expects the house style (a function's braces balanced outside #if blocks).
# usage: sh scripts/check-structure.sh      (LINT_STRICT=0 sh scripts/check-structure.sh: warn only)
set -u
cd "$(dirname "$0")/.." || exit 1
STRICT=${LINT_STRICT:-1}
ALLOW=scripts/long-functions.txt
[ -f "$ALLOW" ] || { echo "check-structure: $ALLOW missing" >&2; exit 2; }
FILES=$(find runtime launch tests bench -name '*.[ch]' | LC_ALL=C sort)

# shellcheck disable=SC2086
LC_ALL=C awk -v strict="$STRICT" -v allow="$ALLOW" -v max_file=1200 -v max_func=100 '
# ---- the scanner ---------------------------------------------------------------------------------
# clean(s): s without comments, string and character literals (block comments span lines: incom)
function clean(s,    res, i, n, c, d, q) {
    res = ""
    n = length(s)
    for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (incom) {
            if (c == "*" && substr(s, i + 1, 1) == "/") { incom = 0; i++ }
            continue
        }
        d = substr(s, i, 2)
        if (d == "/*") { incom = 1; i++; res = res " "; continue }
        if (d == "//") break
        if (c == "\"" || c == "\047") {
            q = c
            for (i++; i <= n; i++) {
                c = substr(s, i, 1)
                if (c == "\\") { i++; continue }
                if (c == q) break
            }
            res = res " 0 "
            continue
        }
        res = res c
    }
    return res
}
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
# static, or a macro that expands to it (DT_KINL: static inline, isa/vec.h)
function is_static(t) { return t ~ /(^|[^A-Za-z0-9_])(static|DT_KINL)([^A-Za-z0-9_]|$)/ }
# the name a top-level declaration defines: the function before its parameter list, or the
# variable before "=", "[" or the end
function decl_name(t,    u) {
    u = t
    gsub(/[A-Z][A-Z0-9_]*[ \t]*\([^()]*\)/, " ", u)   # attribute macros: DT_PRINTF(1, 2)
    if (u ~ /\(/ && (u !~ /=/ || index(u, "(") < index(u, "="))) {
        u = substr(u, 1, index(u, "(") - 1)
    } else {
        sub(/=.*/, "", u)
        sub(/\[.*/, "", u)
    }
    u = trim(u)
    if (!match(u, /[A-Za-z_][A-Za-z0-9_]*$/)) return ""
    return substr(u, RSTART, RLENGTH)
}
function module_of(path) { sub(/\.[ch]$/, "", path); return path }
function in_graph(path) { return path ~ /^(runtime|launch)\// }
function add_tokens(s,    t) {
    while (match(s, /[A-Za-z_][A-Za-z0-9_]*/)) {
        t = substr(s, RSTART, RLENGTH)
        s = substr(s, RSTART + RLENGTH)
        if (!((file SUBSEP t) in used)) { used[file, t] = 1; nuse++; use_file[nuse] = file; use_tok[nuse] = t }
    }
}
FNR == 1 {
    if (NR > 1) end_file()
    file = FILENAME; nfiles++; files[nfiles] = file
    incom = 0; cont = 0; depth = 0; stmt = ""; sline = 0; infunc = 0
    isdir = file; sub(/\/[^\/]*$/, "", isdir); fdir[file] = isdir
    if (in_graph(file)) node[module_of(file)] = 1
}
{
    nlines[file] = FNR
    line = $0
    if (cont || (!incom && line ~ /^[ \t]*#/)) {
        cont = line ~ /\\$/
        if (line ~ /^[ \t]*#[ \t]*include[ \t]*"/) {
            h = line; sub(/^[^"]*"/, "", h); sub(/".*/, "", h)
            ninc++; inc_file[ninc] = file; inc_name[ninc] = h
        } else if (line ~ /^[ \t]*#[ \t]*define/ || cont) {
            add_tokens(clean(line))
        }
        next
    }
    s = clean(line)
    if (depth > 0) add_tokens(s)
    n = length(s)
    for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (depth > 0) {
            if (c == "{") depth++
            else if (c == "}") {
                depth--
                if (depth == 0) {
                    if (infunc) {
                        nf++; f_file[nf] = file; f_name[nf] = fname; f_start[nf] = sline; f_end[nf] = FNR
                        infunc = 0; stmt = ""; sline = 0
                    } else {
                        stmt = stmt " {} "
                    }
                }
            }
            continue
        }
        if (c == "{") {
            t = trim(stmt)
            depth = 1
            if (t ~ /\)[ \t]*$/ && t !~ /=/) {
                infunc = 1
                fname = decl_name(t)
                if (!is_static(t) && file ~ /\.c$/) define(fname)
                add_tokens(substr(s, i + 1))
            } else {
                if (t ~ /=/ && !is_static(t) && t !~ /^(typedef|extern)[^A-Za-z0-9_]/ && file ~ /\.c$/)
                    define(decl_name(t))
                add_tokens(substr(s, i + 1))
            }
            continue
        }
        if (c == ";") {
            t = trim(stmt)
            if (file ~ /\.c$/ && t != "" && !is_static(t) && t !~ /^(typedef|extern)[^A-Za-z0-9_]/ &&
                t !~ /\{\}/ && !(t ~ /\(/ && t !~ /=/))
                define(decl_name(t))
            stmt = ""; sline = 0
            continue
        }
        if (sline == 0 && c !~ /[ \t]/) sline = FNR
        stmt = stmt c
    }
    stmt = stmt " "
}
function define(name) {
    if (name != "" && in_graph(file)) { def_mod[name] = module_of(file); def_file[name] = file }
}
function end_file() {
    if (depth != 0 || infunc)
        printf "check-structure: %s: unbalanced braces at the end (scanner confused: #if inside a function?)\n", file
}
# ---- the checks ----------------------------------------------------------------------------------
function add_edge(a, b, why) {
    if (a == b || !(a in node) || !(b in node)) return
    if (!((a SUBSEP b) in edge)) {
        edge[a, b] = why
        nout[a]++; out[a, nout[a]] = b
    } else if (index(edge[a, b], why) == 0 && length(edge[a, b]) < 120) {
        edge[a, b] = edge[a, b] ", " why
    }
}
# Tarjan: strongly connected components
function strong(v,    k, w) {
    idx[v] = low[v] = ++counter
    stack[++sp] = v; onstack[v] = 1
    for (k = 1; k <= nout[v]; k++) {
        w = out[v, k]
        if (!(w in idx)) { strong(w); if (low[w] < low[v]) low[v] = low[w] }
        else if (onstack[w] && idx[w] < low[v]) low[v] = idx[w]
    }
    if (low[v] == idx[v]) {
        ncomp++; csize[ncomp] = 0
        do { w = stack[sp--]; onstack[w] = 0; comp[w] = ncomp; csize[ncomp]++; cmem[ncomp, csize[ncomp]] = w } while (w != v)
    }
}
# every elementary circle through start whose other nodes sort after start
function circles(start, v, path, depth_,    k, w) {
    for (k = 1; k <= nout[v]; k++) {
        w = out[v, k]
        if (comp[w] != comp[start] || ncirc >= 200) continue
        if (w == start) { ncirc++; print "  circle: " path " -> " start; continue }
        if (w > start && !(w in onpath)) {
            onpath[w] = 1
            circles(start, w, path " -> " w, depth_ + 1)
            delete onpath[w]
        }
    }
}
END {
    end_file()
    status = 0
    # circles
    for (k = 1; k <= ninc; k++) {
        f = inc_file[k]
        if (!in_graph(f)) continue
        h = fdir[f] "/" inc_name[k]
        if (!(module_of(h) in node)) h = "runtime/" inc_name[k]
        add_edge(module_of(f), module_of(h), "#include \"" inc_name[k] "\"")
    }
    for (k = 1; k <= nuse; k++) {
        f = use_file[k]; t = use_tok[k]
        if (in_graph(f) && (t in def_mod)) add_edge(module_of(f), def_mod[t], t)
    }
    for (v in node) if (!(v in idx)) strong(v)
    nbad = 0
    for (c = 1; c <= ncomp; c++) {
        if (csize[c] < 2) continue
        nbad++
        # members sorted (insertion sort: components are small)
        for (i = 1; i <= csize[c]; i++) m[i] = cmem[c, i]
        for (i = 2; i <= csize[c]; i++) { x = m[i]; for (j = i - 1; j >= 1 && m[j] > x; j--) m[j + 1] = m[j]; m[j + 1] = x }
        list = ""
        for (i = 1; i <= csize[c]; i++) list = list " " m[i]
        printf "check-structure: %s: modules in a circle:%s\n", strict ? "error" : "warning", list
        for (i = 1; i <= csize[c]; i++)
            for (k = 1; k <= nout[m[i]]; k++)
                if (comp[out[m[i], k]] == c)
                    printf "    %s -> %s (%s)\n", m[i], out[m[i], k], edge[m[i], out[m[i], k]]
        ncirc = 0
        for (i = 1; i <= csize[c]; i++) { split("", onpath); onpath[m[i]] = 1; circles(m[i], m[i], m[i], 0) }
        if (ncirc >= 200) print "  (more circles left out)"
    }
    if (nbad && strict) status = 1
    # long files
    for (k = 1; k <= nfiles; k++) {
        f = files[k]
        if (nlines[f] > max_file) {
            printf "check-structure: %s: %s: %d lines (limit %d)\n", strict ? "error" : "warning", f, nlines[f], max_file
            if (strict) status = 1
        }
    }
    # long functions against the allow list
    while ((getline l < allow) > 0) {
        if (l ~ /^[ \t]*(#|$)/) continue
        n = split(l, w, /[ \t]+/)
        if (n < 3) { printf "check-structure: error: %s: \"%s\": expected FILE FUNCTION REASON\n", allow, l; status = 1; continue }
        allowed[w[1], w[2]] = 1; alist[++nallow] = w[1] SUBSEP w[2]
    }
    nlong = 0
    for (k = 1; k <= nf; k++) {
        len = f_end[k] - f_start[k] + 1
        if (len <= max_func) continue
        nlong++
        long[f_file[k], f_name[k]] = len
        if ((f_file[k] SUBSEP f_name[k]) in allowed) continue
        printf "check-structure: error: %s:%d: %s: %d lines (limit %d; not in %s)\n", f_file[k], f_start[k], f_name[k], len, max_func, allow
        status = 1
    }
    for (k = 1; k <= nallow; k++)
        if (!(alist[k] in long)) {
            split(alist[k], w, SUBSEP)
            printf "check-structure: note: %s lists %s %s, which is no longer a function over %d lines: remove the line\n", allow, w[1], w[2], max_func
        }
    printf "check-structure: %d files, %d functions (%d over %d lines), %d circle(s)%s\n", nfiles, nf, nlong, max_func, nbad, status ? ": FAILED" : ""
    exit status
}
' $FILES
