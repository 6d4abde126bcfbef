/* Pseudonyms for a whole Arrow string array in one call (see pseudonym_native.py): for each
   value, "ps_" + the first 32 hex digits of HMAC-SHA256(key, value), the pseudonym of
   connector.node.transform.Modification; an empty value stays empty. HMAC as RFC 2104 defines
   it, over OpenSSL's SHA-256: the padded key's inner and outer states are computed once per
   call and copied per value (OpenSSL's HMAC_Init_ex re-keying costs twice as much per value). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define PSEUDONYM_LEN 35 /* "ps_" + 32 hex digits */
#define MAX_THREADS 16
#define MIN_VALUES_PER_THREAD 8192

typedef struct {
    SHA256_CTX inner, outer;
    const int32_t *offsets;
    const unsigned char *data;
    unsigned char *out;
    const int32_t *out_offsets;
    int64_t begin, end;
} job_t;

static void *pseudonymise_range(void *arg) {
    static const char hex[] = "0123456789abcdef";
    job_t *job = arg;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    for (int64_t i = job->begin; i < job->end; i++) {
        int32_t start = job->offsets[i], len = job->offsets[i + 1] - start;
        if (len <= 0)
            continue;
        ctx = job->inner;
        SHA256_Update(&ctx, job->data + start, (size_t)len);
        SHA256_Final(digest, &ctx);
        ctx = job->outer;
        SHA256_Update(&ctx, digest, sizeof digest);
        SHA256_Final(digest, &ctx);
        unsigned char *o = job->out + job->out_offsets[i];
        o[0] = 'p', o[1] = 's', o[2] = '_';
        for (int k = 0; k < 16; k++) {
            o[3 + 2 * k] = hex[digest[k] >> 4];
            o[4 + 2 * k] = hex[digest[k] & 15];
        }
    }
    return NULL;
}

/* offsets: n + 1 int32 offsets into data (an Arrow string array's buffers, at its offset).
   out: room for n * 35 bytes; out_offsets: room for n + 1 offsets (the caller makes sure that
   n * 35 fits an int32). Returns the number of bytes written to out. */
int64_t hks_pseudonymise(const unsigned char *key, size_t key_len, const int32_t *offsets,
                         const unsigned char *data, int64_t n, unsigned char *out,
                         int32_t *out_offsets, int threads) {
    unsigned char block[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK];
    if (key_len > SHA256_CBLOCK)
        SHA256(key, key_len, block);
    else
        memcpy(block, key, key_len);
    job_t base = {.offsets = offsets, .data = data, .out = out, .out_offsets = out_offsets};
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(&base.inner);
    SHA256_Update(&base.inner, pad, sizeof pad);
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&base.outer);
    SHA256_Update(&base.outer, pad, sizeof pad);

    int32_t total = 0;
    out_offsets[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        if (offsets[i + 1] > offsets[i])
            total += PSEUDONYM_LEN;
        out_offsets[i + 1] = total;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > n / MIN_VALUES_PER_THREAD)
        threads = (int)(n / MIN_VALUES_PER_THREAD);
    if (threads < 1)
        threads = 1;
    job_t jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        jobs[t] = base;
        jobs[t].begin = n * t / threads;
        jobs[t].end = n * (t + 1) / threads;
    }
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&ids[t], NULL, pseudonymise_range, &jobs[t]) == 0;
    pseudonymise_range(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            pseudonymise_range(&jobs[t]); /* no thread to be had: this one does it */
    }
    return total;
}
