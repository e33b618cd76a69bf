/*
 * decode_bench: CPU cost of api_rw_decode() alone (snappy + protobuf-c
 * unpack into the arena + validation) on the load generator's request shape:
 * 2,000 series x 6 Kubernetes-like labels, one sample each.
 *   decode_bench [--iterations N] [--series N] [--proto v1|v2] [--reference | --malloc]
 * --reference decodes through protobuf-c into the arena (no hand-written v1
 * fast path): api_rw_decode_pb_reference after snappy.
 * --malloc unpacks with protobuf-c's default allocator instead of the arena,
 * for comparison (decode via api_rw_decode_pb is not possible then, so that
 * mode times snappy + unpack + free only).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <snappy-c.h>

#include "arena.h"
#include "buf.h"
#include "remote_write.h"
#include "remote_write_v1.pb-c.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t iters = 500, n = 2000;
    int version = 1, use_malloc = 0, reference = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            iters = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--series") && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--proto") && i + 1 < argc)
            version = !strcmp(argv[++i], "v2") ? 2 : 1;
        else if (!strcmp(argv[i], "--malloc"))
            use_malloc = 1;
        else if (!strcmp(argv[i], "--reference"))
            reference = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--iterations N] [--series N] [--proto v1|v2] [--reference | --malloc]\n",
                    argv[0]);
            return 2;
        }
    }
    struct api_rw_series *ser = calloc(n, sizeof *ser);
    struct api_rw_label *lab = calloc(n * 6, sizeof *lab);
    struct api_rw_sample *smp = calloc(n, sizeof *smp);
    char *strs = calloc(n, 192);
    static const char *const names[6] = {"__name__", "container", "instance", "job", "namespace", "pod"};
    for (size_t i = 0; i < n; i++) {
        char *s = strs + i * 192;
        size_t pod = i / 10;
        char *v[6];
        v[0] = s;
        int c = sprintf(s, "container_metric_%zu_total", i % 10) + 1;
        v[1] = s + c;
        c += sprintf(s + c, "app-%zu", pod % 3) + 1;
        v[2] = s + c;
        c += sprintf(s + c, "10.0.%zu.%zu:8080", pod / 250, pod % 250) + 1;
        v[3] = "kubernetes-pods";
        v[4] = s + c;
        c += sprintf(s + c, "team-%zu", pod % 16) + 1;
        v[5] = s + c;
        sprintf(s + c, "web-%zu-7c9f8d6b5-%05zx", pod % 16, pod);
        for (int j = 0; j < 6; j++)
            lab[i * 6 + j] =
                (struct api_rw_label){names[j], v[j], (uint32_t)strlen(names[j]), (uint32_t)strlen(v[j])};
        smp[i] = (struct api_rw_sample){(double)i + 0.5, 1700000000000LL};
        ser[i] =
            (struct api_rw_series){.labels = &lab[i * 6], .n_labels = 6, .samples = &smp[i], .n_samples = 1};
    }
    struct api_rw_request req = {.series = ser, .n_series = n};
    struct buf body = BUF_INIT;
    if (api_rw_encode(&req, version, 0, &body) != 0)
        return 1;
    const char *ct = version == 2 ? API_RW_CONTENT_TYPE_V2 : API_RW_CONTENT_TYPE_V1;
    /* The adapter's defaults: HA replica labels dropped, 5 m future horizon. */
    static const char *const drop[] = {"prometheus_replica", "__replica__"};
    struct api_rw_limits lim = {.max_labels = 64,
                                .max_label_name_len = 1024,
                                .max_label_value_len = 4096,
                                .max_future_ms = 300000,
                                .now_ms = 1700000000000LL,
                                .drop_labels = drop,
                                .n_drop_labels = 2};
    struct arena a;
    arena_init(&a, 0);
    size_t valid = 0;
    char *raw = malloc(32 << 20);
    double t0 = now_s();
    for (size_t it = 0; it < iters; it++) {
        if (use_malloc) {
            size_t ulen = 32 << 20;
            if (snappy_uncompress(body.data, body.len, raw, &ulen) != SNAPPY_OK)
                return 1;
            Prometheus__WriteRequest *wr = prometheus__write_request__unpack(NULL, ulen, (uint8_t *)raw);
            valid += wr->n_timeseries;
            prometheus__write_request__free_unpacked(wr, NULL);
        } else if (reference) {
            size_t ulen = 32 << 20;
            if (snappy_uncompress(body.data, body.len, raw, &ulen) != SNAPPY_OK)
                return 1;
            struct api_rw_request out;
            if (api_rw_decode_pb_reference(raw, ulen, version, &lim, &a, &out) != 0)
                return 1;
            valid += out.n_series - out.n_invalid;
            arena_reset(&a);
        } else {
            struct api_rw_request out;
            if (api_rw_decode(body.data, body.len, ct, &lim, &a, &out) != 0)
                return 1;
            valid += out.n_series - out.n_invalid;
            arena_reset(&a);
        }
    }
    double el = now_s() - t0;
    printf("%s v%d: %zu series x %zu requests: %.3f us/series, %.0f series/s (body %zu bytes)\n",
           use_malloc  ? "malloc unpack"
           : reference ? "protobuf-c arena"
                       : "api_rw_decode",
           version, n, iters, el * 1e6 / (double)(iters * n), (double)(iters * n) / el, body.len);
    arena_free(&a);
    buf_free(&body);
    free(raw);
    free(ser);
    free(lab);
    free(smp);
    free(strs);
    return valid == iters * n ? 0 : 1;
}
