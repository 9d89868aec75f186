
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * Writes the seed inputs of the fuzz targets into DIR/<target>/ (make
 * fuzz-seed, then make fuzz-merge): keys made by akc_key_generate(),
 * Authorization values carrying them, records made by
 * akc_record_encode(), times and durations, and CSV and JSONL files of
 * the shapes "apikeyctl export" writes and "apikeyctl import" reads.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apikey_core.h"


static void aks_write(const char *dir, const char *target, const char *name,
    const void *data, size_t len);
static void aks_text(const char *dir, const char *target, const char *name,
    const char *text);
static void aks_keys(const char *dir);
static void aks_auth(const char *dir);
static void aks_records(const char *dir);
static void aks_times(const char *dir);
static void aks_imports(const char *dir);
static akc_str_t aks_str(const char *s);


static char  aks_key[3][AKC_GEN_KEY_MAX_LEN + 1];


int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed DIR\n");
        return 2;
    }

    if (akc_init() != AKC_OK) {
        fprintf(stderr, "seed: sodium_init() failed\n");
        return 1;
    }

    if (akc_key_generate(AKC_DEFAULT_PREFIX, aks_key[0], sizeof(aks_key[0]))
        < 0
        || akc_key_generate("acme_live", aks_key[1], sizeof(aks_key[1])) < 0
        || akc_key_generate("x", aks_key[2], sizeof(aks_key[2])) < 0)
    {
        fprintf(stderr, "seed: akc_key_generate() failed\n");
        return 1;
    }

    aks_keys(argv[1]);
    aks_auth(argv[1]);
    aks_records(argv[1]);
    aks_times(argv[1]);
    aks_imports(argv[1]);

    return 0;
}


static void
aks_keys(const char *dir)
{
    char  bad[AKC_GEN_KEY_MAX_LEN + 1];

    aks_text(dir, "key", "generated", aks_key[0]);
    aks_text(dir, "key", "generated-two-part", aks_key[1]);
    aks_text(dir, "key", "generated-short-prefix", aks_key[2]);

    /* the generated shape, one checksum character off */

    strcpy(bad, aks_key[0]);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'a' ? 'b' : 'a';
    aks_text(dir, "key", "bad-checksum", bad);

    aks_text(dir, "key", "plain", "imported-key-0001");
    aks_text(dir, "key", "too-short", "short");
    aks_text(dir, "key", "space", "has a space");
}


static void
aks_auth(const char *dir)
{
    char  buf[512];

    /* the first byte picks the scheme: 0 is "Bearer", 1 "ApiKey" */

    snprintf(buf, sizeof(buf), "%cBearer %s", 0, aks_key[0]);
    aks_write(dir, "auth", "bearer", buf, strlen(buf + 1) + 1);

    snprintf(buf, sizeof(buf), "%cbearer   %s \t", 0, aks_key[1]);
    aks_write(dir, "auth", "bearer-spaces", buf, strlen(buf + 1) + 1);

    snprintf(buf, sizeof(buf), "%cApiKey %s", 1, aks_key[2]);
    aks_write(dir, "auth", "apikey", buf, strlen(buf + 1) + 1);

    snprintf(buf, sizeof(buf), "%cBasic dXNlcjpwYXNz", 0);
    aks_write(dir, "auth", "basic", buf, strlen(buf + 1) + 1);

    snprintf(buf, sizeof(buf), "%cBearer", 0);
    aks_write(dir, "auth", "scheme-only", buf, strlen(buf + 1) + 1);

    snprintf(buf, sizeof(buf), "%cBearerx %s", 0, aks_key[0]);
    aks_write(dir, "auth", "scheme-prefix", buf, strlen(buf + 1) + 1);
}


static void
aks_records(const char *dir)
{
    int            n;
    char           hint[AKC_HINT_MAX_LEN + 1];
    akc_record_t   rec;
    unsigned char  buf[AKC_RECORD_MAX_LEN];

    memset(&rec, 0, sizeof(akc_record_t));

    rec.created = 1767225600;
    rec.id = aks_str("0123456789abcdef");
    rec.hint.len = akc_key_hint((unsigned char *) aks_key[0],
                                strlen(aks_key[0]), hint);
    rec.hint.data = hint;

    n = akc_record_encode(&rec, buf, sizeof(buf));
    aks_write(dir, "record", "minimal", buf, n);

    rec.id = aks_str("svc-billing@prod");
    rec.subject = aks_str("Billing service, team \"payments\"");
    rec.scopes = aks_str("read,write,admin:*,files/upload");
    rec.plan = aks_str("gold");
    rec.not_before = 1767225600;
    rec.expires = 1798761600;

    n = akc_record_encode(&rec, buf, sizeof(buf));
    aks_write(dir, "record", "full", buf, n);

    rec.flags = AKC_FLAG_DISABLED;
    rec.expires = 0;
    rec.not_before = 0;
    rec.subject = aks_str("");

    n = akc_record_encode(&rec, buf, sizeof(buf));
    aks_write(dir, "record", "disabled", buf, n);

    rec.flags = AKC_FLAG_RETIRED;
    rec.expires = 1798761600;
    rec.replaced_by = aks_str("svc-billing-2");

    n = akc_record_encode(&rec, buf, sizeof(buf));
    aks_write(dir, "record", "retired", buf, n);
}


static void
aks_times(const char *dir)
{
    aks_text(dir, "time", "utc", "2027-01-31T00:00:00Z");
    aks_text(dir, "time", "fraction-offset", "2027-01-31T12:30:15.250+02:00");
    aks_text(dir, "time", "lower-space", "2027-01-31 23:59:60z");
    aks_text(dir, "time", "now", "now");
    aks_text(dir, "time", "days", "30d");
    aks_text(dir, "time", "weeks", "99999999999w");
    aks_text(dir, "time", "february", "2028-02-29T00:00:00-23:59");
}


static void
aks_imports(const char *dir)
{
    char  buf[2048];

    snprintf(buf, sizeof(buf),
             "key,id,subject,scopes,plan,expires,not_before,disabled\n"
             "%s,svc-billing,Billing,\"read,write\",gold,"
             "2027-01-31T00:00:00Z,,false\n"
             "%s,,\"Team \"\"ops\"\"\",admin,,30d,now,1\n",
             aks_key[0], aks_key[1]);
    aks_text(dir, "import_csv", "keys", buf);

    /* the columns of "apikeyctl export --format csv" */

    aks_text(dir, "import_csv", "hashes",
             "\xef\xbb\xbfid,subject,scopes,plan,expires,not_before,"
             "disabled,hint,created,hash\r\n"
             "seeded,,read,,,,true,ak_4Fq2...,2026-01-01T00:00:00Z,"
             "0f3a5c7e9b1d2f4a6c8e0a2b4d6f8a1c3e5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e"
             "\r\n");

    aks_text(dir, "import_csv", "multiline",
             "subject,key\n\"two\nlines\",imported-key-0001\n");

    snprintf(buf, sizeof(buf),
             "{\"key\": \"%s\", \"id\": \"svc-billing\", \"subject\": "
             "\"Billing\", \"scopes\": [\"read\", \"write\"], \"plan\": "
             "\"gold\", \"expires\": \"2027-01-31T00:00:00Z\", "
             "\"disabled\": false}\n"
             "\n"
             "{\"key\": \"%s\", \"scopes\": \"admin\", \"not_before\": "
             "\"now\", \"disabled\": true, \"subject\": null}\n",
             aks_key[0], aks_key[1]);
    aks_text(dir, "import_jsonl", "keys", buf);

    aks_text(dir, "import_jsonl", "hashes",
             "{\"id\": \"seeded\", \"hash\": \"0f3a5c7e9b1d2f4a6c8e0a2b4d6f8a1"
             "c3e5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e\", \"hint\": \"ak_4Fq2...\","
             " \"created\": \"2026-01-01T00:00:00Z\"}\n"
             "{\"key\": \"imported-key-0001\", \"id\": \"seeded\"}\n"
             "[1, 2]\n"
             "{\"key\": \"imported-key-0002\", \"key\": \"x\"}\n");
}


static void
aks_text(const char *dir, const char *target, const char *name,
    const char *text)
{
    aks_write(dir, target, name, text, strlen(text));
}


static void
aks_write(const char *dir, const char *target, const char *name,
    const void *data, size_t len)
{
    char   path[1024];
    FILE  *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, target);

    if (mkdir(path, 0755) == -1 && errno != EEXIST) {
        fprintf(stderr, "seed: mkdir \"%s\": %s\n", path, strerror(errno));
        exit(1);
    }

    snprintf(path, sizeof(path), "%s/%s/seed-%s", dir, target, name);

    fp = fopen(path, "wb");

    if (fp == NULL
        || fwrite(data, 1, len, fp) != len
        || fclose(fp) != 0)
    {
        fprintf(stderr, "seed: write \"%s\": %s\n", path, strerror(errno));
        exit(1);
    }
}


static akc_str_t
aks_str(const char *s)
{
    akc_str_t  str;

    str.len = strlen(s);
    str.data = s;

    return str;
}
