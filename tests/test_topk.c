/*
 * test_topk.c - dt_metrics_topk_hits (runtime/metrics.h), the top-1 / top-5 accuracy counts:
 *   - against PyTorch (tests/fixtures/torch_topk_ref.txt, made by
 *     tests/fixtures/gen_torch_topk.py: output.topk(maxk, 1, True, True), pred.eq(target)) on
 *     random logits of 10, 100, 3 and 6 classes;
 *   - hand-made cases: a label 5th and 6th, ties broken toward the lower class index (the label
 *     tied with the 5th place), NaN logits ranked first, k >= K counting every sample, and
 *     top-1 agreeing with dt_xent_forward's argmax on tied logits.
 *
 * usage: test_topk [tests/fixtures/torch_topk_ref.txt]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"
#include "fixture.h"
#include "kernels/kernels.h"
#include "metrics.h"

enum { MAXN = 128, MAXK = 128 };

/* Every case of the fixture: dtrain's counts equal torch's. */
static void torch_cases(const char *path)
{
    FILE *f = fixture_open(path, "test_topk");
    if (!f)
        return;
    static float logits[MAXN * MAXK];
    int labels[MAXN], ncase = 0;
    char *t;
    while ((t = next_line(f))) {
        if (strcmp(t, "case") != 0)
            continue;
        int n = atoi(next_tok()), k = atoi(next_tok()), rows = 0, want[2] = {-1, -1};
        CHECK(n > 0 && n <= MAXN && k > 0 && k <= MAXK);
        while ((t = next_line(f)) && strcmp(t, "end") != 0) {
            if (strcmp(t, "row") == 0 && rows < n) {
                CHECK(read_floats(logits + (size_t)rows * k, k) == k);
                rows++;
            } else if (strcmp(t, "labels") == 0) {
                for (int i = 0; i < n; i++)
                    labels[i] = atoi(next_tok());
            } else if (strcmp(t, "hits") == 0) {
                want[0] = atoi(next_tok());
                want[1] = atoi(next_tok());
            }
        }
        CHECK(rows == n);
        int h1 = dt_metrics_topk_hits(logits, labels, n, k, 1);
        int h5 = dt_metrics_topk_hits(logits, labels, n, k, 5);
        if (h1 != want[0] || h5 != want[1])
            fprintf(stderr, "case %d (%d x %d): top1 %d top5 %d, torch %d %d\n", ncase, n, k, h1,
                    h5, want[0], want[1]);
        CHECK(h1 == want[0]);
        CHECK(h5 == want[1]);
        ncase++;
    }
    CHECK(ncase == 4);
    fclose(f);
}

static void hand_cases(void)
{
    /* 8 classes: the label's logit is 6th (5 above it), then 5th */
    const float a[8] = {9, 8, 7, 6, 5, 4, 3, 2};
    int y = 5;
    CHECK(dt_metrics_topk_hits(a, &y, 1, 8, 5) == 0);
    y = 4;
    CHECK(dt_metrics_topk_hits(a, &y, 1, 8, 5) == 1);
    y = 0;
    CHECK(dt_metrics_topk_hits(a, &y, 1, 8, 1) == 1);
    /* ties: classes 1..6 equal; the 5 lower-index ones (1..5) take places 1..5 */
    const float b[8] = {1, 2, 2, 2, 2, 2, 2, 0};
    y = 5;
    CHECK(dt_metrics_topk_hits(b, &y, 1, 8, 5) == 1);
    y = 6;
    CHECK(dt_metrics_topk_hits(b, &y, 1, 8, 5) == 0);
    y = 1;
    CHECK(dt_metrics_topk_hits(b, &y, 1, 8, 1) == 1);
    y = 2;
    CHECK(dt_metrics_topk_hits(b, &y, 1, 8, 1) == 0);
    /* top-1 with ties agrees with the cross-entropy kernel's argmax (first maximum) */
    float probs[8];
    int correct = -1;
    y = 1;
    dt_xent_forward(probs, b, &y, NULL, 1, 8, &correct);
    CHECK(correct == dt_metrics_topk_hits(b, &y, 1, 8, 1));
    y = 3;
    dt_xent_forward(probs, b, &y, NULL, 1, 8, &correct);
    CHECK(correct == dt_metrics_topk_hits(b, &y, 1, 8, 1));
    /* NaN ranks above every number (torch.topk) */
    const float c[6] = {NAN, NAN, NAN, NAN, NAN, 1};
    y = 5;
    CHECK(dt_metrics_topk_hits(c, &y, 1, 6, 5) == 0);
    y = 4;
    CHECK(dt_metrics_topk_hits(c, &y, 1, 6, 5) == 1);
    /* fewer classes than k: every sample */
    const float d[6] = {0, 1, 2, 5, 4, 3};
    int yy[2] = {0, 0};
    CHECK(dt_metrics_topk_hits(d, yy, 2, 3, 5) == 2);
    CHECK(dt_metrics_topk_hits(d, yy, 2, 3, 1) == 1); /* row 2: class 0 is its largest */
}

int main(int argc, char **argv)
{
    torch_cases(argc > 1 ? argv[1] : "tests/fixtures/torch_topk_ref.txt");
    hand_cases();
    return check_finish("test_topk");
}
