/*
 * memload: write series [--from, --to) to a remote-write receiver, each with
 * --samples samples --step seconds apart ending now (9 samples 15 s apart by
 * default: a 2 m window at a 15 s scrape interval), six Kubernetes-like
 * labels (__name__, container, instance, job, namespace, pod; ten metric
 * names per pod), --batch series per request, v1 + snappy bodies built with
 * the project's encoder (api_rw_encode). Exits 1 unless every request got a
 * 2xx. Prints one line: series, requests, elapsed_s.
 *
 * usage: memload --url URL --from N --to N [--samples 9] [--step 15]
 *                [--batch 10000]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "buf.h"
#include "remote_write.h"
#include "bench_series.h"

static void die(const char *msg)
{
    fprintf(stderr, "memload: %s\n", msg);
    exit(1);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    size_t from = 0, to = 0, batch = 10000;
    unsigned nsamp = 9, step = 15;
    static const struct option lo[] = {
        {"url", required_argument, 0, 'u'},
        {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},
        {"samples", required_argument, 0, 'n'},
        {"step", required_argument, 0, 's'},
        {"batch", required_argument, 0, 'b'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'u':
            url = optarg;
            break;
        case 'f':
            from = strtoull(optarg, NULL, 10);
            break;
        case 't':
            to = strtoull(optarg, NULL, 10);
            break;
        case 'n':
            nsamp = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            step = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'b':
            batch = strtoull(optarg, NULL, 10);
            break;
        default:
            die("usage: memload --url URL --from N --to N [--samples 9] [--step 15] [--batch 10000]");
        }
    }
    if (!url || to <= from || nsamp == 0 || batch == 0)
        die("usage: memload --url URL --from N --to N [--samples 9] [--step 15] [--batch 10000]");

    struct api_rw_series *ser = calloc(batch, sizeof *ser);
    struct api_rw_label *lab = calloc(batch * 6, sizeof *lab);
    struct api_rw_sample *smp = calloc(batch * nsamp, sizeof *smp);
    char *strs = calloc(batch, 192);
    if (!ser || !lab || !smp || !strs)
        die("out of memory");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Content-Type: " API_RW_CONTENT_TYPE_V1);
    hdr = curl_slist_append(hdr, "Content-Encoding: snappy");
    hdr = curl_slist_append(hdr, "X-Prometheus-Remote-Write-Version: 0.1.0");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct timespec w;
    clock_gettime(CLOCK_REALTIME, &w);
    int64_t now_ms = (int64_t)w.tv_sec * 1000 + w.tv_nsec / 1000000;
    unsigned long requests = 0;
    for (size_t lo_i = from; lo_i < to; lo_i += batch) {
        size_t n = to - lo_i < batch ? to - lo_i : batch;
        for (size_t k = 0; k < n; k++) {
            size_t i = lo_i + k, p = i / BENCH_N_METRICS;
            char *s = strs + k * 192;
            int c = snprintf(s, 32, "app-%zu", p % 7);
            char *instance = s + c + 1;
            c += 1 + snprintf(instance, 40, "10.%zu.%zu.%zu:8080", (p >> 16) & 255, (p >> 8) & 255, p & 255);
            char *ns = s + c + 1;
            c += 1 + snprintf(ns, 24, "team-%zu", p % 16);
            char *pod = s + c + 1;
            snprintf(pod, 64, "web-%zu-7c9f8d6b5-%08zx", p % 16, p);
            const char *vals[6] = {
                bench_metric_names[i % BENCH_N_METRICS], s, instance, "kubernetes-pods", ns, pod};
            static const char *const names[6] = {"__name__", "container", "instance",
                                                 "job",      "namespace", "pod"};
            struct api_rw_label *l = &lab[k * 6];
            for (int j = 0; j < 6; j++) {
                l[j] = (struct api_rw_label){.name = names[j],
                                             .name_len = (uint32_t)strlen(names[j]),
                                             .value = vals[j],
                                             .value_len = (uint32_t)strlen(vals[j])};
            }
            for (unsigned j = 0; j < nsamp; j++) {
                smp[k * nsamp + j].timestamp_ms = now_ms - (int64_t)(nsamp - 1 - j) * step * 1000;
                smp[k * nsamp + j].value = (double)(i % 1000) * 10 + j + 0.5;
            }
            ser[k] = (struct api_rw_series){
                .labels = l, .n_labels = 6, .samples = &smp[k * nsamp], .n_samples = nsamp};
        }
        struct api_rw_request req = {.version = 1, .series = ser, .n_series = n};
        struct buf body = BUF_INIT;
        if (api_rw_encode(&req, 1, 0, &body) != 0)
            die("encode failed");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        buf_free(&body);
        requests++;
        if (rc != CURLE_OK || status < 200 || status >= 300) {
            fprintf(stderr, "memload: request %lu: curl %d status %ld\n", requests, (int)rc, status);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("series=%zu requests=%lu elapsed_s=%.2f\n", to - from, requests,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    free(ser);
    free(lab);
    free(smp);
    free(strs);
    return 0;
}
