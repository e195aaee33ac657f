/*
 * net.c - model description parsing, parameter/arena layout and the forward/backward drivers.
 * See net.h. The layer API is layer.c; the kinds and the graph passes (fusion) are the
 * registry's (layers/registry.h): this file names no layer kind.
 */
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ini.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "layers/registry.h"
#include "lowp.h"
#include "net_act.h"
#include "timeline.h"

/* Generated at build time from models/NAME.cfg (build/models_builtin.c). */
typedef struct {
    const char *name, *text;
} builtin_model;
extern const builtin_model dt_builtin_models[];
extern const int dt_builtin_models_count;

const char *dt_net_builtin_text(const char *name)
{
    for (int i = 0; i < dt_builtin_models_count; i++)
        if (strcmp(dt_builtin_models[i].name, name) == 0)
            return dt_builtin_models[i].text;
    return NULL;
}

const char *dt_net_builtin_names(void)
{
    static char buf[512];
    buf[0] = '\0';
    for (int i = 0; i < dt_builtin_models_count; i++) {
        if (i)
            strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
        strncat(buf, dt_builtin_models[i].name, sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

/* ---- parsing ---- */

enum { MAX_SECTION_KEYS = 32 };

typedef struct {
    dt_net *net;
    int cap;
    int in_net; /* inside the [net] section */
    int seen_net;
    dt_layer *cur;
    int last_line; /* of the last header or key (messages about what is missing) */
    /* the keys of the current section so far: a repeated key is ambiguous */
    int nkeys;
    char keys[MAX_SECTION_KEYS][DT_NAME_MAX];
    int key_lines[MAX_SECTION_KEYS];
} parse_state;

static int parse_shape(const char *val, int *c, int *h, int *w)
{
    char *e;
    long v[3];
    const char *p = val;
    for (int i = 0; i < 3; i++) {
        v[i] = strtol(p, &e, 10);
        if (e == p || v[i] <= 0 || v[i] > 65536)
            return DT_ERR;
        p = e;
        if (i < 2) {
            if (*p != 'x')
                return DT_ERR;
            p++;
        }
    }
    if (*p)
        return DT_ERR;
    *c = (int)v[0];
    *h = (int)v[1];
    *w = (int)v[2];
    return DT_OK;
}

/* One `key = value` of the [net] section. */
static int parse_net_key(dt_net *net, const char *key, const char *val, const char *src, int line)
{
    if (strcmp(key, "input") == 0) {
        if (parse_shape(val, &net->in_c, &net->in_h, &net->in_w) != 0)
            return dt_err("%s:%d: [net] input = '%s': expected CxHxW, each in [1, 65536], "
                          "e.g. 1x28x28",
                          src, line, val);
        return DT_OK;
    }
    if (strcmp(key, "classes") == 0) {
        char *e;
        long v = strtol(val, &e, 10);
        if (*e || v < 2 || v > 100000)
            return dt_err("%s:%d: [net] classes = '%s': expected an integer in [2, 100000]", src,
                          line, val);
        net->classes = (int)v;
        return DT_OK;
    }
    return dt_err("%s:%d: [net] unknown key '%s': expected input, classes", src, line, key);
}

static int parse_cb(void *ud, const char *section, const char *key, const char *val,
                    const char *src, int line)
{
    parse_state *ps = ud;
    dt_net *net = ps->net;
    ps->last_line = line;
    if (!key) { /* section header */
        ps->nkeys = 0;
        ps->in_net = strcmp(section, "net") == 0;
        if (ps->in_net) {
            if (ps->seen_net || net->nlayers > 0)
                return dt_err("%s:%d: [net] must come once, before the layers", src, line);
            ps->seen_net = 1;
            return DT_OK;
        }
        if (!ps->seen_net)
            return dt_err("%s:%d: expected the [net] section first", src, line);
        const dt_layer_ops *ops = dt_layer_kind(section);
        if (!ops)
            return dt_err("%s:%d: unknown layer kind [%s]: expected one of %s", src, line, section,
                          dt_layer_kinds());
        net->layers = dt_xgrow(net->layers, net->nlayers, &ps->cap, sizeof *net->layers);
        dt_layer *l = &net->layers[net->nlayers];
        memset(l, 0, sizeof *l);
        l->ops = ops;
        l->index = net->nlayers;
        l->input = net->nlayers - 1;
        l->input2 = -2;
        snprintf(l->name, sizeof l->name, "%d", l->index); /* nn.Sequential's naming */
        l->priv = ops->priv_size ? dt_xcalloc(1, ops->priv_size) : NULL;
        l->src = src;
        l->line = line;
        net->nlayers++;
        ps->cur = l;
        return DT_OK;
    }
    if (!ps->in_net && !ps->cur) /* a key before any section: it belongs to no layer */
        return dt_err("%s:%d: key '%s' outside a section: expected [net] or a [layer] header "
                      "first",
                      src, line, key);
    if (strlen(key) >= DT_NAME_MAX)
        return dt_err("%s:%d: [%s] key '%.40s...' is too long: expected a known key", src, line,
                      section, key);
    for (int i = 0; i < ps->nkeys; i++)
        if (strcmp(ps->keys[i], key) == 0)
            return dt_err("%s:%d: [%s] key '%s' given twice (first at line %d): expected each key "
                          "once per section",
                          src, line, section, key, ps->key_lines[i]);
    if (ps->nkeys == MAX_SECTION_KEYS)
        return dt_err("%s:%d: [%s] more than %d keys: expected at most one of each known key", src,
                      line, section, MAX_SECTION_KEYS);
    snprintf(ps->keys[ps->nkeys], DT_NAME_MAX, "%s", key);
    ps->key_lines[ps->nkeys++] = line;
    if (ps->in_net)
        return parse_net_key(net, key, val, src, line);
    dt_layer *l = ps->cur;
    if (strcmp(key, "input") == 0 || (strcmp(key, "from") == 0 && l->ops->two_inputs)) {
        if (strlen(val) >= DT_NAME_MAX)
            return dt_err("%s:%d: %s = '%s' is too long", src, line, key, val);
        snprintf(key[0] == 'i' ? l->input_ref : l->from_ref, DT_NAME_MAX, "%s", val);
        return DT_OK;
    }
    if (strcmp(key, "name") == 0) {
        if (strlen(val) >= DT_NAME_MAX - 16)
            return dt_err("%s:%d: name '%s' is too long", src, line, val);
        for (int i = 0; i < net->nlayers - 1; i++)
            if (strcmp(net->layers[i].name, val) == 0)
                return dt_err("%s:%d: duplicate layer name '%s'", src, line, val);
        snprintf(l->name, sizeof l->name, "%s", val);
        return DT_OK;
    }
    return dt_layer_option(l, key, val, src, line);
}

static void net_free_layers(dt_net *net)
{
    for (int i = 0; i < net->nlayers; i++) {
        if (net->layers[i].ops->free && net->layers[i].priv)
            net->layers[i].ops->free(&net->layers[i]);
        free(net->layers[i].priv);
    }
    free(net->layers);
    net->layers = NULL;
}

/* Resolves `input =` / `from =` text of layer l: "" keeps *idx, "data" is the net's input, "-K"
 * is K layers back, anything else the name of an earlier layer. */
static int resolve_ref(const dt_net *net, const dt_layer *l, const char *ref, const char *key,
                       int *idx)
{
    if (!ref[0])
        return DT_OK;
    if (strcmp(ref, "data") == 0) {
        *idx = -1;
        return DT_OK;
    }
    if (ref[0] == '-') {
        char *e;
        long k = strtol(ref + 1, &e, 10);
        if (*e || k < 1 || k > l->index) {
            if (l->index == 0)
                return dt_err("%s:%d: %s = %s: the first layer has no earlier layer: expected data",
                              l->src, l->line, key, ref);
            return dt_err("%s:%d: %s = %s: expected -1 .. -%d (layers back), a layer name or data",
                          l->src, l->line, key, ref, l->index);
        }
        *idx = l->index - (int)k;
        return DT_OK;
    }
    for (int j = l->index - 1; j >= 0; j--)
        if (strcmp(net->layers[j].name, ref) == 0) {
            *idx = j;
            return DT_OK;
        }
    return dt_err("%s:%d: %s = %s: no earlier layer has that name", l->src, l->line, key, ref);
}

int dt_net_build(dt_net **out, const char *spec, int max_batch)
{
    return dt_net_build_for(out, spec, max_batch, 0, 0, 0);
}

/* The activation arena. Every layer's output lives through the step (backward reads them). The
 * gradients do not: backward runs from the last layer to the first, and the gradient of layer i's
 * output is written from the backward of its last consumer (or by the loss, for the last layer)
 * and read by layer i's own backward (a fused [maxpool]'s, by its [conv]'s), so it is live over
 * the layer indices [reader, last writer]. Gradients whose intervals do not overlap share memory
 * (largest first, each into the first slot it fits without overlap): a resnet's gradients need a
 * few layers' worth instead of one per layer. The first writer of a gradient overwrites it and
 * later ones add (dt_layer.accum), so a shared slot's old contents never leak. Layers whose
 * gradient nobody writes or reads (a fused [conv]'s and [relu]'s) get none. A net built with
 * dt_net_opts.no_grad_sharing gives every gradient memory of its own (tests compare). */
/* The live interval [lo[i], hi[i]] (layer indices in backward) of each layer's output gradient;
 * hi[i] < lo[i]: the layer gets no gradient memory. */
static void grad_lifetimes(const dt_net *net, int *lo, int *hi)
{
    const int n = net->nlayers;
    /* the layer whose dout an alias layer (flatten) shares, followed to the end */
    int *owner = dt_xmalloc((size_t)n, sizeof *owner);
    for (int i = 0; i < n; i++) {
        const dt_layer *l = &net->layers[i];
        owner[i] = l->ops->alias && l->input >= 0 ? owner[l->input] : i;
        hi[i] = i == n - 1 ? n : -1; /* the last layer's: written by the loss */
        lo[i] = i;
    }
    for (int j = 0; j < n; j++) {
        const dt_layer *l = &net->layers[j];
        /* j's backward writes its inputs' gradients; a fused layer's, its group's head does, for
         * the inputs from outside the group (a fused residual add's second input) */
        int c = j;
        while (c > 0 && net->layers[c].fused)
            c--;
        const int in[2] = {l->input, l->input2 >= 0 ? l->input2 : -1};
        for (int k = 0; k < 2; k++)
            if (in[k] >= 0 && (!l->fused || in[k] < c) && c > hi[owner[in[k]]])
                hi[owner[in[k]]] = c;
    }
    for (int i = 0; i < n; i++) {
        const dt_layer *l = &net->layers[i];
        /* an output nobody reads: a gradient of its own, never written (zero), as before */
        if ((!l->fused && !l->ops->alias && hi[i] < 0) || net->opts.no_grad_sharing)
            hi[i] = n, lo[i] = 0;
        /* a fused conv reads the gradient of its group's last layer (the pool) */
        if (l->fused && (i + 1 == n || !net->layers[i + 1].fused)) {
            int c = i;
            while (c > 0 && net->layers[c].fused)
                c--;
            lo[i] = c;
        }
    }
    free(owner);
}

/* Gradients written in place (dt_layer_ops.din_is_dout): share[i] = j when layer i's output
 * gradient can live in layer j's own (j a residual add whose first input is i, and i's only
 * consumer; i a layer of its own, not fused, nor its input2): j's backward writes it over its
 * output gradient (the same values: a copy, rounded to bf16 in bf16), after the second input's
 * gradient has been read from it; -1: none. j's interval then starts at i's, and i gets no slot:
 * resnet20's basic blocks skip a copy of the gradient each. */
static void grad_in_place(const dt_net *net, int *lo, int *hi, int *share)
{
    const int n = net->nlayers;
    int *uses = dt_xcalloc((size_t)n + 1, sizeof *uses);
    for (int j = 0; j < n; j++) {
        const dt_layer *l = &net->layers[j];
        share[j] = -1;
        if (l->input >= 0)
            uses[l->input]++;
        if (l->input2 >= 0)
            uses[l->input2]++;
    }
    for (int j = 0; j < n && !net->opts.no_grad_sharing; j++) {
        const dt_layer *l = &net->layers[j];
        const int i = l->input;
        if (!l->ops->din_is_dout || l->fused || i < 0 || i == l->input2 || uses[i] != 1 ||
            net->layers[i].ops->alias || net->layers[i].fused || net->layers[i + 1].fused ||
            hi[j] < lo[j] || hi[i] < lo[i])
            continue;
        share[i] = j;
        lo[j] = lo[i] < lo[j] ? lo[i] : lo[j];
        hi[i] = -1, lo[i] = 0; /* no slot of its own */
    }
    free(uses);
}

/* Assigns each gradient that needs memory a slot (slot[i], -1: none): largest first, each into
 * the first slot where no interval overlaps its own. Returns the slot count; slot_size[s] is the
 * largest gradient (floats at max_batch) in slot s. */
static int assign_slots(const dt_net *net, const int *lo, const int *hi, int *slot,
                        size_t *slot_size)
{
    const int n = net->nlayers;
    size_t *size = dt_xmalloc((size_t)n + 1, sizeof *size);
    for (int i = 0; i < n; i++) {
        const dt_layer *l = &net->layers[i];
        size[i] = !l->ops->alias && hi[i] >= lo[i] && !(l->fused && lo[i] == i) &&
                          !(!l->fused && i + 1 < n && net->layers[i + 1].fused)
                      ? (size_t)net->max_batch * l->out_size
                      : 0;
    }
    const int nslots = dt_first_fit(n, size, lo, hi, slot, slot_size);
    free(size);
    return nslots;
}

/* floats of the arena's first part: every layer's output (the gradient slots follow) */
static size_t arena_outs(const dt_net *net, int max_batch)
{
    size_t outs = 0;
    for (int i = 0; i < net->nlayers; i++)
        if (dt_net_keeps_output(net, i))
            outs += (size_t)max_batch * net->layers[i].out_size;
    return outs;
}

static int plan_arena(dt_net *net, int max_batch)
{
    const int n = net->nlayers;
    int *hi = dt_xmalloc((size_t)n, sizeof *hi), *lo = dt_xmalloc((size_t)n, sizeof *lo);
    int *slot = dt_xmalloc((size_t)n, sizeof *slot), *share = dt_xmalloc((size_t)n, sizeof *share);
    size_t *slot_size = dt_xcalloc((size_t)n, sizeof *slot_size);
    size_t *slot_off = dt_xmalloc((size_t)n + 1, sizeof *slot_off);
    grad_lifetimes(net, lo, hi);
    grad_in_place(net, lo, hi, share);
    const int nslots = assign_slots(net, lo, hi, slot, slot_size);
    const size_t outs = arena_outs(net, max_batch);
    size_t douts = 0;
    for (int s = 0; s < nslots; s++) {
        slot_off[s] = outs + douts;
        douts += slot_size[s];
    }
    net->arena_floats = outs + douts;
    int rc = DT_OK;
    if (net->arena_floats >= DT_NET_MAX_ARENA_TOTAL) {
        rc = dt_err("%s: the activation arena needs %zu floats at batch %d: expected fewer than "
                    "%zu (2^33; smaller layers or train.batch_size)",
                    net->source, net->arena_floats, max_batch, DT_NET_MAX_ARENA_TOTAL);
        goto out;
    }
    /* calloc, not dt_xcalloc (which writes the zeros): glibc maps a large block zeroed without
     * touching it, so a bf16 net, whose activations live elsewhere (net_act.h), never makes the
     * pages of their float32 memory resident */
    net->arena = calloc(net->arena_floats ? net->arena_floats : 1, sizeof *net->arena);
    DT_ASSERT(net->arena);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        dt_layer *l = &net->layers[i];
        if (l->ops->alias) {
            l->out = NULL; /* set per forward from the input */
            l->dout = l->input >= 0 ? net->layers[l->input].dout : NULL;
            continue;
        }
        l->out = dt_net_keeps_output(net, i) ? net->arena + off : NULL;
        off += l->out ? (size_t)max_batch * l->out_size : 0;
        l->dout = slot[i] >= 0 ? net->arena + slot_off[slot[i]] : NULL;
    }
    for (int i = 0; i < n; i++)
        if (share[i] >= 0)
            net->layers[i].dout = net->layers[share[i]].dout;
    for (int i = 0; i < n; i++) /* aliases of a shared gradient (flatten after it) */
        if (net->layers[i].ops->alias && net->layers[i].input >= 0)
            net->layers[i].dout = net->layers[net->layers[i].input].dout;
out:
    free(hi), free(lo), free(slot), free(share), free(slot_size), free(slot_off);
    return rc;
}

/* Parses the model spec (a built-in name or a .cfg path) into net's layer list. */
static int parse_spec(dt_net *net, const char *spec)
{
    parse_state ps = {.net = net};
    int rc;
    const char *slash = strrchr(spec, '/');
    size_t sl = strlen(spec);
    if (slash || (sl > 4 && strcmp(spec + sl - 4, ".cfg") == 0)) {
        snprintf(net->source, sizeof net->source, "%s", spec);
        const char *stem = slash ? slash + 1 : spec;
        snprintf(net->model, sizeof net->model, "%.*s", (int)strcspn(stem, "."), stem);
        rc = dt_ini_parse_file(spec, parse_cb, &ps);
    } else {
        const char *text = dt_net_builtin_text(spec);
        if (!text)
            return dt_err("model: unknown model '%s': expected a built-in (%s) or a path to a "
                          ".cfg model description",
                          spec, dt_net_builtin_names());
        snprintf(net->source, sizeof net->source, "models/%s.cfg", spec);
        snprintf(net->model, sizeof net->model, "%s", spec);
        rc = dt_ini_parse(text, net->source, parse_cb, &ps);
    }
    if (rc != 0)
        return rc;
    if (!ps.seen_net || net->in_c == 0 || net->classes == 0)
        return dt_err("%s:%d: %s: expected a [net] section with input = CxHxW and classes = K",
                      net->source, ps.last_line ? ps.last_line : 1,
                      ps.last_line ? "end of file" : "empty model description");
    if (net->nlayers == 0)
        return dt_err("%s:%d: end of file: the model has no layers: expected [layer] sections "
                      "after [net]",
                      net->source, ps.last_line);
    return DT_OK;
}

/* Resolves layer l's inputs, gives it its input shape and lets its kind set it up (output shape,
 * parameters, workspace), within the size limits. */
static int setup_layer(dt_net *net, dt_layer *l)
{
    if (resolve_ref(net, l, l->input_ref, "input", &l->input) != 0 ||
        resolve_ref(net, l, l->from_ref, "from", &l->input2) != 0)
        return DT_ERR;
    if (l->ops->two_inputs && l->input2 == -2)
        return dt_err("%s:%d: [%s] needs from = NAME or -K (the second input)", l->src, l->line,
                      l->ops->kind);
    if (l->input < 0) {
        l->in_c = net->in_c;
        l->in_h = net->in_h;
        l->in_w = net->in_w;
    } else {
        dt_layer *p = &net->layers[l->input];
        l->in_c = p->c;
        l->in_h = p->h;
        l->in_w = p->w;
    }
    l->c = l->in_c;
    l->h = l->in_h;
    l->w = l->in_w;
    if (l->ops->setup && l->ops->setup(l, net) != 0)
        return DT_ERR;
    if (dt_net_check_sizes(net, l, 0, (size_t)l->c, (size_t)l->h, (size_t)l->w) != 0)
        return DT_ERR;
    if (l->ws_floats >= DT_NET_MAX_ARENA)
        return dt_err("%s:%d: [%s] needs a workspace of %zu floats: expected fewer than %zu "
                      "(2^31)",
                      l->src, l->line, l->ops->kind, l->ws_floats, DT_NET_MAX_ARENA);
    l->out_size = (size_t)l->c * (size_t)l->h * (size_t)l->w;
    return DT_OK;
}

/* The input shape (the description's, or (c, h, w) when c > 0), then every layer in order. */
static int setup_layers(dt_net *net, int c, int h, int w)
{
    net->desc_c = net->in_c;
    net->desc_h = net->in_h;
    net->desc_w = net->in_w;
    if (c > 0) {
        net->in_c = c;
        net->in_h = h;
        net->in_w = w;
    }
    size_t v = (size_t)net->in_c * (size_t)net->in_h * (size_t)net->in_w; /* <= 2^48 */
    if (dt_mul_overflow(v, (size_t)net->max_batch, &v) || v >= DT_NET_MAX_ARENA)
        return dt_err("%s: input %dx%dx%d at batch %d is too large: expected fewer than %zu "
                      "values (2^31)",
                      net->source, net->in_c, net->in_h, net->in_w, net->max_batch,
                      DT_NET_MAX_ARENA);
    for (int i = 0; i < net->nlayers; i++)
        if (setup_layer(net, &net->layers[i]) != 0)
            return DT_ERR;
    dt_layer *last = &net->layers[net->nlayers - 1];
    if (last->out_size != (size_t)net->classes)
        return dt_err("%s: the last layer gives %zu values per sample, expected classes = %d",
                      net->source, last->out_size, net->classes);
    return DT_OK;
}

/* Gradient accumulation: in backward (last layer first) the first consumer of a tensor writes
 * its gradient, any later one adds to it. A layer reads input2 after input, so in backward its
 * input2 edge counts first. */
static void mark_accumulation(dt_net *net)
{
    int *seen = dt_xcalloc((size_t)net->nlayers + 1, sizeof *seen);
    for (int i = net->nlayers - 1; i >= 0; i--) {
        dt_layer *l = &net->layers[i];
        if (l->input2 >= -1)
            l->accum2 = seen[l->input2 + 1]++ > 0;
        l->accum = seen[l->input + 1]++ > 0;
    }
    free(seen);
}

int dt_net_build_for(dt_net **out, const char *spec, int max_batch, int c, int h, int w)
{
    return dt_net_build_opts(out, spec, max_batch, c, h, w, NULL);
}

int dt_net_build_opts(dt_net **out, const char *spec, int max_batch, int c, int h, int w,
                      const dt_net_opts *opts)
{
    DT_ASSERT(max_batch > 0);
    *out = NULL;
    dt_net *net = dt_xcalloc(1, sizeof *net);
    net->max_batch = max_batch;
    if (opts)
        net->opts = *opts;
    int rc = parse_spec(net, spec);
    if (rc == DT_OK)
        rc = setup_layers(net, c, h, w);
    if (rc != DT_OK) {
        dt_net_free(net);
        return rc;
    }
    mark_accumulation(net);
    dt_layers_passes(net);
    dt_gemm_prepare();
    /* flat parameter/gradient buffers and the activation arena */
    net->param = dt_xcalloc(net->numel, sizeof *net->param);
    net->grad = dt_xcalloc(net->numel, sizeof *net->grad);
    net->state = dt_xcalloc(net->state_numel, sizeof *net->state);
    for (int i = 0; i < net->nlayers; i++)
        if (net->layers[i].ws_floats > net->ws_floats)
            net->ws_floats = net->layers[i].ws_floats;
    net->ws = dt_xcalloc(net->ws_floats, sizeof *net->ws);
    if (plan_arena(net, max_batch) != 0) {
        dt_net_free(net);
        return DT_ERR;
    }
    *out = net;
    return DT_OK;
}

void dt_net_free(dt_net *net)
{
    if (!net)
        return;
    dt_net_act_free(net); /* before the layers it points back at the arena */
    net_free_layers(net);
    free(net->params);
    free(net->param);
    free(net->grad);
    free(net->bufs);
    free(net->state);
    free(net->ws);
    free(net->arena);
    free(net->lp_param);
    free(net);
}

void dt_net_init(dt_net *net, uint64_t seed)
{
    dt_mt19937 g;
    dt_mt_seed(&g, seed);
    for (int i = 0; i < net->nlayers; i++)
        if (net->layers[i].ops->init)
            net->layers[i].ops->init(&net->layers[i], net, &g);
}

void dt_net_set_precision(dt_net *net, int format)
{
    DT_ASSERT(format == DT_FP32 || format == DT_BF16 || format == DT_FP16);
    net->lowp = format;
    dt_gemm_prepare(); /* the GEMMs' buffers now (a no-op if the pool has not grown) */
    if (format != DT_FP32 && !net->lp_param)
        net->lp_param = dt_xmalloc(net->numel ? net->numel : 1, sizeof *net->lp_param);
    /* bf16 activations are stored as bf16 (net_act.h); fp32 and fp16 keep the float32 arena.
     * The memory a step will use is written now, so that the first step does not pay its page
     * faults (a benchmark of a few steps would count them): the whole arena for fp32 and fp16,
     * only its gradient slots for bf16 (net_act zeroes its own buffers). */
    if (format == DT_BF16 && !net->act && !net->opts.no_bf16_store)
        net->act = dt_net_act_new(net);
    else if (format != DT_BF16)
        dt_net_act_free(net);
    const size_t from = net->act ? arena_outs(net, net->max_batch) : 0;
    memset(net->arena + from, 0, (net->arena_floats - from) * sizeof *net->arena);
}

/* low precision: the layers run on the rounded weights (net->param points at them meanwhile, and
 * lp_master at the master), all but those whose kernels round them as they read them
 * (dt_param_reads_master: dt_layer_param gives them the master, and they get no copy). round 0:
 * the copy the forward made (unchanged since). */
static void use_rounded_weights(dt_net *net, int round)
{
    const float *master = net->param;
    for (int k = 0; round && k < net->nparams;) {
        if (dt_param_reads_master(net, &net->params[k])) {
            k++;
            continue;
        }
        /* a run of parameters that need the copy (contiguous: params are laid out in order) */
        const size_t from = net->params[k].off;
        size_t to = from;
        for (; k < net->nparams && !dt_param_reads_master(net, &net->params[k]); k++)
            to = net->params[k].off + net->params[k].numel;
        /* a chunk at a time: rounded while it is still in L1 (one pass over memory) */
        for (size_t i = from; i < to; i += 4096) {
            const size_t n = to - i < 4096 ? to - i : 4096;
            memcpy(net->lp_param + i, master + i, n * sizeof *master);
            dt_round_to(net->lowp, net->lp_param + i, n);
        }
    }
    net->lp_master = net->param;
    net->param = net->lp_param;
}

/* the end of a low-precision forward or backward: param back to the master */
static void use_master_weights(dt_net *net)
{
    net->param = net->lp_master;
    net->lp_master = NULL;
}

/* bf16 activation storage: the net's input x is the one activation not made by a layer; round
 * it where a layer reads it */
static void round_net_input(dt_net *net, const dt_layer *l, int N)
{
    const size_t nx = (size_t)N * net->in_c * net->in_h * net->in_w;
    if (l->input < 0)
        dt_round_to(net->lowp, (float *)net->x, nx);
    if (l->input2 == -1 && l->input >= 0)
        dt_round_to(net->lowp, (float *)net->x, nx);
}

/* layer i reads layer k's output (as its input or its second input) */
static int reads(const dt_layer *l, int k)
{
    return l->input == k || (l->ops->two_inputs && l->input2 == k);
}

/* The lane layout of a step at batch N (dt_net.lanes): off unless the bf16 convolutions run and
 * N is a multiple of the table's lanes. Then a layer's output is in the lane layout (lanes_ok)
 * when it can write it (a convolution told to, or a layer keeping its inputs' layout, inputs in
 * lanes) and every layer that reads it can read it (a layer keeping the layout only when its own
 * output is in lanes too): the largest such set, found by striking layers from the candidates
 * until none is struck. A few dozen layers: microseconds a step. The bits are the same either
 * way (layer.h), so a partial batch may run without the layout. */
static void plan_lanes(dt_net *net, int N)
{
    const dt_kern *k = dt_kern_get();
    const int L = k->lanes;
    net->lanes = 0;
    for (int i = 0; i < net->nlayers; i++)
        net->layers[i].lanes_ok = 0;
    if (net->lowp != DT_BF16 || net->opts.no_lanes || !k->bf16conv || N % L != 0)
        return;
    enum { MAXL = 1024 };
    int cap[MAXL];
    if (net->nlayers > MAXL)
        return;
    int any = 0;
    for (int i = 0; i < net->nlayers; i++) {
        dt_layer *l = &net->layers[i];
        cap[i] = l->ops->lanes ? l->ops->lanes(l, net, N) : 0;
        l->lanes_ok = (cap[i] & (DT_LANES_WRITE | DT_LANES_KEEP)) != 0 && i + 1 < net->nlayers;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < net->nlayers; i++) {
            dt_layer *l = &net->layers[i];
            if (!l->lanes_ok)
                continue;
            int bad = 0;
            if (cap[i] & DT_LANES_KEEP)
                bad = l->input < 0 || !net->layers[l->input].lanes_ok ||
                      (l->ops->two_inputs && (l->input2 < 0 || !net->layers[l->input2].lanes_ok));
            for (int j = i + 1; j < net->nlayers && !bad; j++) {
                const dt_layer *r = &net->layers[j];
                if (reads(r, i))
                    bad = !(cap[j] & (DT_LANES_READ | DT_LANES_KEEP)) ||
                          ((cap[j] & DT_LANES_KEEP) && !r->lanes_ok);
            }
            if (bad)
                l->lanes_ok = 0, changed = 1;
        }
    }
    for (int i = 0; i < net->nlayers; i++)
        any |= net->layers[i].lanes_ok;
    net->lanes = any ? L : 0;
}

/* the step context of a forward or backward given none: one process, seed 0, step 0 */
static const dt_step_ctx no_ctx;

float *dt_net_forward(dt_net *net, const float *x, int N, int train, const dt_step_ctx *ctx)
{
    DT_ASSERT(N > 0 && N <= net->max_batch);
    net->x = x;
    net->ctx = ctx ? ctx : &no_ctx;
    plan_lanes(net, N);
    if (net->lowp)
        use_rounded_weights(net, 1);
    for (int i = 0; i < net->nlayers; i++) {
        dt_layer *l = &net->layers[i];
        if (l->ops->alias)
            l->out = (float *)dt_layer_in(net, l);
        if (l->fused)
            continue;
        if (net->act) { /* bf16: every activation was rounded where it was made */
            dt_net_act_check(net, i);
            round_net_input(net, l, N);
        } else if (net->lowp) { /* what the layer reads is 16-bit (rounding is idempotent) */
            dt_round_to(net->lowp, (float *)dt_layer_in(net, l),
                        (size_t)N * l->in_c * l->in_h * l->in_w);
            if (l->input2 >= -1) {
                const size_t n2 = l->input2 < 0 ? (size_t)net->in_c * net->in_h * net->in_w
                                                : net->layers[l->input2].out_size;
                dt_round_to(net->lowp, (float *)dt_layer_in2(net, l), (size_t)N * n2);
            }
        }
        l->ops->forward(l, net, N, train);
        if (net->act)
            dt_net_act_made(net, i, N, train);
    }
    dt_layer *last = &net->layers[net->nlayers - 1];
    if (net->lowp) {
        if (!net->act)
            dt_round_to(net->lowp, last->out, (size_t)N * last->out_size);
        use_master_weights(net);
    }
    return last->out;
}

float *dt_net_dlogits(dt_net *net)
{
    dt_layer *last = &net->layers[net->nlayers - 1];
    DT_ASSERT(last->dout);
    return last->dout;
}

void dt_net_backward(dt_net *net, int N, const dt_step_ctx *ctx)
{
    net->ctx = ctx ? ctx : &no_ctx;
    plan_lanes(net, N); /* the forward's (same N, same table) */
    /* low precision: the weights rounded by the forward (unchanged since) */
    if (net->lowp)
        use_rounded_weights(net, 0);
    for (int i = net->nlayers - 1; i >= 0; i--) {
        dt_layer *l = &net->layers[i];
        /* the gradient a layer receives is 16-bit (a fused layer's too: the conv that does its
         * work reads it), rounded here unless the reader's kernels round it as they read it */
        if (net->lowp && l->dout && !l->ops->alias && !dt_layer_reader_rounds(net, i, N))
            dt_round_to(net->lowp, l->dout, (size_t)N * l->out_size);
        const double tl0 = dt_tl_on ? dt_now() : 0.0;
        if (net->act && !l->fused) /* bf16: its activations back from their bf16 copies */
            dt_net_act_fetch(net, i, N);
        if (!l->fused)
            l->ops->backward(l, net, N);
        if (dt_tl_on && !l->fused)
            dt_tl_span("backward", l->name, DT_TL_MAIN, tl0, dt_now(), -1);
        if (net->ctx->grad_ready && l->nparam > 0)
            net->ctx->grad_ready(net->ctx->grad_ready_ctx, net->params[l->param0].off);
    }
    if (net->lowp)
        use_master_weights(net);
}

int dt_net_has_refresh(const dt_net *net)
{
    for (int i = 0; i < net->nlayers; i++)
        if (net->layers[i].ops->refresh)
            return 1;
    return 0;
}

void dt_net_refresh(dt_net *net, int phase)
{
    for (int i = 0; i < net->nlayers; i++)
        if (net->layers[i].ops->refresh)
            net->layers[i].ops->refresh(&net->layers[i], net, phase);
}

int dt_net_bn_refresh(dt_net *net, dt_net_feed_fn feed, void *ud, const dt_step_ctx *ctx)
{
    if (!dt_net_has_refresh(net))
        return 0;
    dt_step_ctx rc = ctx ? *ctx : no_ctx;
    rc.bn_refresh = 1;
    dt_net_refresh(net, 0);
    const float *x;
    int n;
    for (int64_t b = 0; (n = feed(ud, b, &x)) > 0; b++)
        dt_net_forward(net, x, n, 1, &rc);
    net->ctx = &no_ctx; /* not left pointing at rc */
    dt_net_refresh(net, 1);
    return 1;
}

void dt_net_print(const dt_net *net, void *file)
{
    FILE *f = file;
    fprintf(f, "model %s (%s): input %dx%dx%d, %d classes, %zu parameters\n", net->model,
            net->source, net->in_c, net->in_h, net->in_w, net->classes, net->numel);
    if (net->in_c != net->desc_c || net->in_h != net->desc_h || net->in_w != net->desc_w)
        fprintf(f, "  (built for the data's %dx%dx%d input; the description names %dx%dx%d)\n",
                net->in_c, net->in_h, net->in_w, net->desc_c, net->desc_h, net->desc_w);
    for (int i = 0; i < net->nlayers; i++) {
        const dt_layer *l = &net->layers[i];
        fprintf(f, "  %2d %-8s %-10s -> %dx%dx%d", i, l->ops->kind, l->name, l->c, l->h, l->w);
        if (l->fused)
            fprintf(f, "  (fused into layer %d)", i - 1 - (i > 0 && net->layers[i - 1].fused));
        for (int k = 0; k < l->nparam; k++) {
            const dt_param *p = &net->params[l->param0 + k];
            fprintf(f, "  %s(", p->name);
            for (int d = 0; d < p->ndim; d++)
                fprintf(f, d ? ",%d" : "%d", p->shape[d]);
            fprintf(f, ")");
        }
        fprintf(f, "\n");
    }
}
