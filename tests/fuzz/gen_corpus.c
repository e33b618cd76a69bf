/*
 * Writes the seed corpora of the remote-write fuzz targets with the
 * project's own encoder: small valid payloads and near-valid ones (one rule
 * broken each, truncations, an oversized length claim).
 *   gen_corpus DIR   -> DIR/fuzz_rw_v1/, DIR/fuzz_rw_v2/, DIR/fuzz_rw_snappy/
 * The committed corpora under tests/fuzz/corpus/ come from this program.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "remote_write.h"

#define L(n, v)                                                                                              \
    {                                                                                                        \
        n, v, sizeof(n) - 1, sizeof(v) - 1                                                                   \
    }

static const char *outdir;

static void write_file(const char *target, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", outdir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* Every case goes to the three targets: raw v1, raw v2, and snappy with a type byte. */
static void emit(const char *name, const struct api_rw_request *r)
{
    for (int v = 1; v <= 2; v++) {
        struct buf raw = BUF_INIT, body = BUF_INIT;
        if (api_rw_encode(r, v, API_RW_ENC_RAW, &raw) != 0 || api_rw_encode(r, v, 0, &body) != 0)
            exit(1);
        write_file(v == 1 ? "fuzz_rw_v1" : "fuzz_rw_v2", name, raw.data, raw.len);
        char sname[256];
        struct buf sn = BUF_INIT;
        buf_putc(&sn, (char)(v - 1)); /* type byte: 0 = v1, 1 = v2 */
        buf_append(&sn, body.data, body.len);
        snprintf(sname, sizeof sname, "v%d_%s", v, name);
        write_file("fuzz_rw_snappy", sname, sn.data, sn.len);
        /* near-valid: the same body cut short */
        if (body.len > 4) {
            snprintf(sname, sizeof sname, "v%d_%s_truncated", v, name);
            write_file("fuzz_rw_snappy", sname, sn.data, sn.len - 3);
        }
        buf_free(&sn);
        buf_free(&raw);
        buf_free(&body);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    const int64_t t = 1700000000000LL;

    struct api_rw_label k8s[] = {L("__name__", "container_cpu_usage_seconds_total"),
                                 L("container", "app"),
                                 L("instance", "10.0.0.1:9100"),
                                 L("job", "kubelet"),
                                 L("namespace", "prod"),
                                 L("pod", "app-7d9f-abcde")};
    struct api_rw_label gauge[] = {L("__name__", "queue_depth"), L("namespace", "prod")};
    struct api_rw_sample s2[] = {{1.5, t}, {2.5, t + 15000}};
    struct api_rw_sample s1[] = {{42, t}};
    struct api_rw_metadata md[] = {
        {"container_cpu_usage_seconds_total", 33, API_RW_TYPE_COUNTER, "CPU seconds.", "seconds"},
        {"queue_depth", 11, API_RW_TYPE_GAUGE, "Depth.", ""},
    };
    struct api_rw_series valid[] = {
        {.labels = k8s, .n_labels = 6, .samples = s2, .n_samples = 2, .type = API_RW_TYPE_COUNTER},
        {.labels = gauge,
         .n_labels = 2,
         .samples = s1,
         .n_samples = 1,
         .n_exemplars = 1,
         .n_histograms = 1,
         .type = API_RW_TYPE_GAUGE},
    };
    struct api_rw_request r = {.series = valid, .n_series = 2, .metadata = md, .n_metadata = 2};
    emit("valid", &r);

    struct api_rw_request meta_only = {.metadata = md, .n_metadata = 2};
    emit("metadata_only", &meta_only);

    struct api_rw_sample stale[] = {{api_stale_nan(), t + 30000}};
    struct api_rw_series st = {.labels = gauge, .n_labels = 2, .samples = stale, .n_samples = 1};
    struct api_rw_request rs = {.series = &st, .n_series = 1};
    emit("stale_marker", &rs);

    struct api_rw_label replica[] = {L("__name__", "up"), L("job", "node"), L("prometheus_replica", "a")};
    struct api_rw_series rep = {.labels = replica, .n_labels = 3, .samples = s1, .n_samples = 1};
    struct api_rw_request rr = {.series = &rep, .n_series = 1};
    emit("ha_replica", &rr);

    static struct {
        const char *name;
        struct api_rw_label l[3];
        size_t n;
    } broken[] = {
        {"missing_name", {L("job", "j")}, 1},
        {"unsorted", {L("__name__", "m"), L("pod", "p"), L("job", "j")}, 3},
        {"duplicate", {L("__name__", "m"), L("job", "a"), L("job", "b")}, 3},
        {"empty_value", {L("__name__", "m"), L("job", "")}, 2},
        {"invalid_name", {L("__name__", "m"), L("job-x", "j")}, 2},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        struct api_rw_series ser[2] = {
            valid[1], {.labels = broken[i].l, .n_labels = broken[i].n, .samples = s1, .n_samples = 1}};
        struct api_rw_request rb = {.series = ser, .n_series = 2};
        emit(broken[i].name, &rb);
    }

    struct api_rw_sample future[] = {{1, t + 3600 * 1000}};
    struct api_rw_series fs = {.labels = gauge, .n_labels = 2, .samples = future, .n_samples = 1};
    struct api_rw_request rf = {.series = &fs, .n_series = 1};
    emit("future", &rf);

    /* snappy front end only: an unsupported type, and a length claim far over the cap */
    const char bad_type[] = "\x03\x00";
    write_file("fuzz_rw_snappy", "unsupported_type", bad_type, 2);
    const char huge[] = "\x00\x80\x80\x80\x80\x04\x08"
                        "abc";
    write_file("fuzz_rw_snappy", "huge_length_claim", huge, sizeof huge - 1);
    return 0;
}
