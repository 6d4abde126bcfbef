/* Pseudonyms for a whole Arrow string array in one call (hks_pseudonymise), and a whole batch of
   plain CSV rows dropped and pseudonymised in one pass (hks_csv_rows); see pseudonym_native.py. For each
   value, "ps_" + the first 32 hex digits of HMAC-SHA256(key, value), the pseudonym of
   connector.node.transform.Modification; an empty value stays empty. HMAC as RFC 2104 defines
   it, over OpenSSL's SHA-256: the padded key's inner and outer states are computed once per
   call and copied per value (OpenSSL's HMAC_Init_ex re-keying costs twice as much per value). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PSEUDONYM_LEN 35 /* "ps_" + 32 hex digits */
#define MAX_THREADS 16
#define MIN_VALUES_PER_THREAD 8192
#define MIN_BYTES_PER_THREAD (512 * 1024)
#define CSV_FIELD_LIMIT 131072 /* Python's csv.field_size_limit(): a longer field is the record path's error */

typedef struct {
    SHA256_CTX inner, outer;
    const int32_t *offsets;
    const unsigned char *data;
    unsigned char *out;
    const int32_t *out_offsets;
    int64_t begin, end;
} job_t;

static void hex_prefix(const unsigned char *digest, unsigned char *o) {
    static const char hex[] = "0123456789abcdef";
    o[0] = 'p', o[1] = 's', o[2] = '_';
    for (int k = 0; k < 16; k++) {
        o[3 + 2 * k] = hex[digest[k] >> 4];
        o[4 + 2 * k] = hex[digest[k] & 15];
    }
}

/* The first 16 bytes of a state's hash words, big-endian: the digest's prefix after its last block. */
static void state_prefix(const SHA256_CTX *ctx, unsigned char *digest, int words) {
    for (int w = 0; w < words; w++) {
        uint32_t h = ctx->h[w];
        digest[4 * w] = (unsigned char)(h >> 24), digest[4 * w + 1] = (unsigned char)(h >> 16);
        digest[4 * w + 2] = (unsigned char)(h >> 8), digest[4 * w + 3] = (unsigned char)h;
    }
}

/* One padded final block (FIPS 180-4 5.1.1) after `before` bytes already hashed. */
static void final_block(unsigned char *block, const unsigned char *tail, size_t len, uint64_t before) {
    uint64_t bits = (before + len) * 8;
    memcpy(block, tail, len);
    block[len] = 0x80;
    memset(block + len + 1, 0, 56 - len - 1);
    for (int i = 0; i < 8; i++)
        block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
}

/* The pseudonym of value[0..len) into o[0..PSEUDONYM_LEN). A value of up to 55 bytes fits the
   inner hash's one final block and the inner digest the outer's: two compressions, padded here,
   instead of SHA256_Update and SHA256_Final twice (their bookkeeping cost as much again). */
static void pseudonym(const SHA256_CTX *inner, const SHA256_CTX *outer, const unsigned char *value, size_t len,
                      unsigned char *o) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx = *inner;
    if (len <= 55) {
        unsigned char block[SHA256_CBLOCK];
        final_block(block, value, len, SHA256_CBLOCK);
        SHA256_Transform(&ctx, block);
        state_prefix(&ctx, digest, 8);
        ctx = *outer;
        final_block(block, digest, sizeof digest, SHA256_CBLOCK);
        SHA256_Transform(&ctx, block);
        state_prefix(&ctx, digest, 4);
    } else {
        SHA256_Update(&ctx, value, len);
        SHA256_Final(digest, &ctx);
        ctx = *outer;
        SHA256_Update(&ctx, digest, sizeof digest);
        SHA256_Final(digest, &ctx);
    }
    hex_prefix(digest, o);
}

/* RFC 2104: the inner and outer hash states of the padded key. */
static void key_states(const unsigned char *key, size_t key_len, SHA256_CTX *inner, SHA256_CTX *outer) {
    unsigned char block[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK];
    if (key_len > SHA256_CBLOCK)
        SHA256(key, key_len, block);
    else
        memcpy(block, key, key_len);
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(inner);
    SHA256_Update(inner, pad, sizeof pad);
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(outer);
    SHA256_Update(outer, pad, sizeof pad);
}

/* How many threads for `work` units when each should have at least `least`. */
static int threads_for(int asked, int64_t work, int64_t least) {
    if (asked > MAX_THREADS)
        asked = MAX_THREADS;
    if (asked > work / least)
        asked = (int)(work / least);
    return asked < 1 ? 1 : asked;
}

/* fn on each of `count` jobs of `size` bytes, the first on this thread; a job no thread can be
   had for runs here too. */
static void run_jobs(void *(*fn)(void *), void *jobs, size_t size, int count) {
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 1; t < count; t++)
        started[t] = pthread_create(&ids[t], NULL, fn, (char *)jobs + t * size) == 0;
    fn(jobs);
    for (int t = 1; t < count; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            fn((char *)jobs + t * size);
    }
}

static void *pseudonymise_range(void *arg) {
    job_t *job = arg;
    for (int64_t i = job->begin; i < job->end; i++) {
        int32_t start = job->offsets[i], len = job->offsets[i + 1] - start;
        if (len > 0)
            pseudonym(&job->inner, &job->outer, job->data + start, (size_t)len, job->out + job->out_offsets[i]);
    }
    return NULL;
}

/* offsets: n + 1 int32 offsets into data (an Arrow string array's buffers, at its offset).
   out: room for n * 35 bytes; out_offsets: room for n + 1 offsets (the caller makes sure that
   n * 35 fits an int32). Returns the number of bytes written to out. */
int64_t hks_pseudonymise(const unsigned char *key, size_t key_len, const int32_t *offsets,
                         const unsigned char *data, int64_t n, unsigned char *out,
                         int32_t *out_offsets, int threads) {
    job_t base = {.offsets = offsets, .data = data, .out = out, .out_offsets = out_offsets};
    key_states(key, key_len, &base.inner, &base.outer);

    int32_t total = 0;
    out_offsets[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        if (offsets[i + 1] > offsets[i])
            total += PSEUDONYM_LEN;
        out_offsets[i + 1] = total;
    }
    threads = threads_for(threads, n, MIN_VALUES_PER_THREAD);
    job_t jobs[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        jobs[t] = base;
        jobs[t].begin = n * t / threads;
        jobs[t].end = n * (t + 1) / threads;
    }
    run_jobs(pseudonymise_range, jobs, sizeof jobs[0], threads);
    return total;
}

/* ------------------------------------------------------------------------------------------------
   Plain CSV rows: the batch holds no quote, carriage return or NUL (the caller checks), so a row is
   a line and its fields are what lies between commas, as Python's csv.reader reads them. Each row
   must have exactly `fields` fields of at most CSV_FIELD_LIMIT bytes, else the whole batch is
   refused (-1) and the record path decides; an empty line is skipped, as csv.reader gives no row.
   The kept fields (keep[i]) are joined by commas, those with pseudo[i] replaced by their pseudonym
   unless empty: what csv.writer writes when at least two fields are kept (none needs quoting). */
typedef struct {
    SHA256_CTX inner, outer;
    const unsigned char *data, *keep, *pseudo;
    int64_t begin, end; /* a whole number of lines of data */
    int32_t fields;
    unsigned char *out, *out_end;
    int64_t written; /* bytes written, or -1: a row that does not fit */
    int64_t rows;
} csv_job_t;

static void *csv_range(void *arg) {
    csv_job_t *job = arg;
    const unsigned char *p = job->data + job->begin, *end = job->data + job->end;
    unsigned char *o = job->out;
    job->written = -1;
    while (p < end) {
        if (*p == '\n') { /* an empty line: no row */
            p++;
            continue;
        }
        int32_t field = 0;
        int first = 1;
        for (;;) {
            const unsigned char *f = p;
            while (p < end && *p != ',' && *p != '\n')
                p++;
            size_t len = (size_t)(p - f);
            if (field >= job->fields || len > CSV_FIELD_LIMIT)
                return NULL;
            if (job->keep[field]) {
                /* Past the bound only a row with too few fields can write (csv_bound): refused. */
                int pseudonymise = job->pseudo[field] && len > 0;
                if (job->out_end - o < (int64_t)(pseudonymise ? PSEUDONYM_LEN : len) + 2) /* a comma, a newline */
                    return NULL;
                if (!first)
                    *o++ = ',';
                first = 0;
                if (pseudonymise) {
                    pseudonym(&job->inner, &job->outer, f, len, o);
                    o += PSEUDONYM_LEN;
                } else {
                    memcpy(o, f, len);
                    o += len;
                }
            }
            field++;
            if (p >= end || *p == '\n')
                break;
            p++; /* the comma */
        }
        if (field != job->fields)
            return NULL;
        *o++ = '\n';
        job->rows++;
        p++; /* the newline, or past the end */
    }
    job->written = o - job->out;
    return NULL;
}

/* The most bytes a range's rows can take when each has `fields` fields: a row takes at least
   `fields` bytes (its commas and newline), so there are at most len / fields + 1 of them, each
   at most its own length with every pseudonymised field grown to a pseudonym. */
static int64_t csv_bound(int64_t len, int32_t fields, int32_t pseudonymised) {
    return len + (len / fields + 1) * ((int64_t)pseudonymised * PSEUDONYM_LEN + 1) + PSEUDONYM_LEN + 2;
}

/* data[0..len): whole lines (the last may lack its newline). Writes the rows to a buffer it
   allocates (*out, to be given back with hks_free) and returns their length, their number in *rows;
   -1 when a row does not fit (see above), -2 when memory cannot be had. */
int64_t hks_csv_rows(const unsigned char *key, size_t key_len, const unsigned char *data, int64_t len, int32_t fields,
                     const unsigned char *keep, const unsigned char *pseudo, unsigned char **out, int64_t *rows,
                     int threads) {
    *out = NULL;
    *rows = 0;
    if (fields < 1 || len < 0)
        return -1;
    int32_t pseudonymised = 0;
    for (int32_t i = 0; i < fields; i++)
        pseudonymised += keep[i] && pseudo[i];
    csv_job_t base = {.data = data, .keep = keep, .pseudo = pseudo, .fields = fields};
    key_states(key, key_len, &base.inner, &base.outer);
    threads = threads_for(threads, len, MIN_BYTES_PER_THREAD);
    csv_job_t jobs[MAX_THREADS];
    int64_t begin = 0, placed[MAX_THREADS + 1] = {0};
    for (int t = 0; t < threads; t++) { /* ranges cut after a newline, each writing its own part of out */
        int64_t cut = len * (t + 1) / threads;
        if (t == threads - 1 || cut <= begin) {
            cut = t == threads - 1 ? len : begin;
        } else {
            const unsigned char *nl = memchr(data + cut - 1, '\n', (size_t)(len - cut + 1));
            cut = nl ? nl - data + 1 : len;
        }
        jobs[t] = base;
        jobs[t].begin = begin;
        jobs[t].end = cut;
        placed[t + 1] = placed[t] + csv_bound(cut - begin, fields, pseudonymised);
        begin = cut;
    }
    unsigned char *buffer = malloc((size_t)placed[threads] + 1);
    if (buffer == NULL)
        return -2;
    for (int t = 0; t < threads; t++)
        jobs[t].out = buffer + placed[t], jobs[t].out_end = buffer + placed[t + 1];
    run_jobs(csv_range, jobs, sizeof jobs[0], threads);
    int64_t total = 0;
    for (int t = 0; t < threads; t++) {
        if (jobs[t].written < 0) {
            free(buffer);
            return -1;
        }
        memmove(buffer + total, jobs[t].out, (size_t)jobs[t].written); /* parts close up in order */
        total += jobs[t].written;
        *rows += jobs[t].rows;
    }
    *out = buffer;
    return total;
}

void hks_free(void *buffer) { free(buffer); }
