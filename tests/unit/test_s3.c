/* test_s3.c: the S3 client's pure parts: ListObjectsV2 and <Error> parsing (AWS-shaped
 * documents, entities, CDATA, truncation at every byte, malformed input, size and count
 * caps), s3:// URIs, RFC 3986 encoding and canonical URLs; and, on a real event loop,
 * argument checks, retries running out against a closed port, and freeing a client
 * with requests in flight. Real servers are in tests/e2e/test_s3_client.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ev.h"
#include "kcodec.h"
#include "s3.h"
#include "s3_parse.h"

/* The shape of the ListObjectsV2 example in the AWS S3 API reference. */
static const char AWS_PAGE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "    <Name>bucket</Name>\n"
    "    <Prefix/>\n"
    "    <ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>\n"
    "    "
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwN=</NextContinuationToken>\n"
    "    <KeyCount>2</KeyCount>\n"
    "    <MaxKeys>2</MaxKeys>\n"
    "    <EncodingType>url</EncodingType>\n"
    "    <IsTruncated>true</IsTruncated>\n"
    "    <Contents>\n"
    "        <Key>happyface.jpg</Key>\n"
    "        <LastModified>2014-11-21T19:40:05.000Z</LastModified>\n"
    "        <ETag>\"70ee1738b6b21e2c8a43f3a5ab0eee71\"</ETag>\n"
    "        <Size>11</Size>\n"
    "        <StorageClass>STANDARD</StorageClass>\n"
    "        "
    "<Owner><ID>bcaf1ffd86f41161ca5fb16fd081034f</ID><DisplayName>webfile</DisplayName></Owner>\n"
    "    </Contents>\n"
    "    <Contents>\n"
    "        <Key>photos/2006/January/sample.jpg</Key>\n"
    "        <LastModified>2014-11-21T19:40:05.000Z</LastModified>\n"
    "        <ETag>&quot;a0b923820dcc509a6f75849b-2&quot;</ETag>\n"
    "        <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\n"
    "        <Size>142863</Size>\n"
    "        <StorageClass>STANDARD</StorageClass>\n"
    "    </Contents>\n"
    "</ListBucketResult>\n";

static void test_parse_aws_page(void **state)
{
    struct s3_list_page pg;
    (void)state;
    assert_int_equal(s3_parse_list(AWS_PAGE, strlen(AWS_PAGE), &pg), 0);
    assert_int_equal(pg.n, 2);
    assert_true(pg.truncated);
    assert_string_equal(pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwN=");
    assert_string_equal(pg.objects[0].key, "happyface.jpg");
    assert_int_equal(pg.objects[0].size, 11);
    assert_string_equal(pg.objects[0].etag, "70ee1738b6b21e2c8a43f3a5ab0eee71");
    assert_string_equal(pg.objects[1].key, "photos/2006/January/sample.jpg");
    assert_int_equal(pg.objects[1].size, 142863);
    assert_string_equal(pg.objects[1].etag, "a0b923820dcc509a6f75849b-2");
    s3_list_page_free(&pg);
    assert_null(pg.objects);
    s3_list_page_free(NULL);
}

/* Wraps contents in a ListBucketResult and parses it. */
static int parse_body(const char *contents, struct s3_list_page *pg)
{
    char buf[8192];
    int n =
        snprintf(buf, sizeof buf, "<ListBucketResult xmlns=\"x\">%s</ListBucketResult>", contents);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    return s3_parse_list(buf, (size_t)n, pg);
}

static void test_parse_empty_and_last_page(void **state)
{
    struct s3_list_page pg;
    (void)state;
    assert_int_equal(parse_body("<Name>b</Name><IsTruncated>false</IsTruncated>", &pg), 0);
    assert_int_equal(pg.n, 0);
    assert_false(pg.truncated);
    assert_null(pg.next_token);
    s3_list_page_free(&pg);
    static const char moto[] =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ListBucketResult xmlns=\"http://s3"
        ".amazonaws.com/doc/2006-03-01/\"><IsTruncated>false</IsTruncated><Name>b</Name>"
        "<Prefix/><MaxKeys>1000</MaxKeys><KeyCount>0</KeyCount></ListBucketResult>";
    assert_int_equal(s3_parse_list(moto, sizeof moto - 1, &pg), 0);
    s3_list_page_free(&pg);
    /* namespace prefixes, comments and CRLF are fine */
    static const char ns[] =
        "<?xml version=\"1.0\"?>\r\n<!-- hi --><s3:ListBucketResult xmlns:s3=\"x\">"
        "<s3:Contents><s3:Key>k</s3:Key><s3:Size>0</s3:Size></s3:Contents>"
        "</s3:ListBucketResult><!-- bye -->\r\n";
    assert_int_equal(s3_parse_list(ns, sizeof ns - 1, &pg), 0);
    assert_int_equal(pg.n, 1);
    assert_string_equal(pg.objects[0].key, "k");
    assert_int_equal(pg.objects[0].size, 0);
    assert_string_equal(pg.objects[0].etag, "");
    s3_list_page_free(&pg);
}

static void test_parse_entities(void **state)
{
    struct s3_list_page pg;
    (void)state;
    assert_int_equal(
        parse_body("<Contents><Key>a&amp;b&lt;c&gt;d&quot;e&apos;f&#38;&#x4E2D;&#20013;&#xfc;"
                   "<![CDATA[<raw&amp;>]]>z</Key><Size>1</Size>"
                   "<ETag>&quot;abc&quot;</ETag></Contents>"
                   "<NextContinuationToken>t&amp;=</NextContinuationToken>"
                   "<IsTruncated>true</IsTruncated>",
                   &pg),
        0);
    assert_int_equal(pg.n, 1);
    assert_string_equal(pg.objects[0].key,
                        "a&b<c>d\"e'f&\xE4\xB8\xAD\xE4\xB8\xAD\xC3\xBC<raw&amp;>z");
    assert_string_equal(pg.objects[0].etag, "abc");
    assert_string_equal(pg.next_token, "t&=");
    s3_list_page_free(&pg);
    /* a key of raw UTF-8 and spaces passes through untouched */
    assert_int_equal(
        parse_body("<Contents><Key> sp ace \xC3\xBC+%=?#</Key><Size>5</Size></Contents>", &pg), 0);
    assert_string_equal(pg.objects[0].key, " sp ace \xC3\xBC+%=?#");
    s3_list_page_free(&pg);
}

static void test_parse_bad_entities(void **state)
{
    static const char *bad[] = {"&foo;", "&amp",   "&#0;",         "&#xD800;", "&#x110000;", "&#;",
                                "&#x;",  "&#12a;", "&#999999999;", "a<b",      "<![CDATA[x"};
    struct s3_list_page pg;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char doc[256];
        snprintf(doc, sizeof doc, "<Contents><Key>%s</Key><Size>1</Size></Contents>", bad[i]);
        assert_int_equal(parse_body(doc, &pg), -1);
        assert_null(pg.objects);
        assert_int_equal(pg.n, 0);
    }
}

static void test_parse_malformed(void **state)
{
    static const char *bad[] = {
        "",
        "   ",
        "<ListBucketResult>",
        "<ListBucketResult></ListBucketResults>",
        "<ListBucketResult></ListBucketResult><ListBucketResult></ListBucketResult>",
        "text<ListBucketResult></ListBucketResult>",
        "<ListBucketResult></ListBucketResult>trailing",
        "<Error><Code>AccessDenied</Code></Error>",
        "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Key>j</Key><Size>1</Size></Contents></"
        "ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>99999999999999999999</Size></Contents></"
        "ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>1</Size><ETag>" /* 72 chars */
        "000000000000000000000000000000000000000000000000000000000000000000000000"
        "</ETag></Contents></ListBucketResult>",
        "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
        "<ListBucketResult><NextContinuationToken>a</NextContinuationToken>"
        "<NextContinuationToken>b</NextContinuationToken></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>1</Size></Contents",
        "<ListBucketResult><Contents <Key>k</Key></Contents></ListBucketResult>",
        "<ListBucketResult a=\"x></ListBucketResult>",
        "<!DOCTYPE x [<!ENTITY e \"boom\">]><ListBucketResult></ListBucketResult>",
        "<ListBucketResult><!DOCTYPE x></ListBucketResult>",
        "<ListBucketResult><?pi</ListBucketResult>",
        "<ListBucketResult><!-- open</ListBucketResult>",
        "<></>",
        "</ListBucketResult>",
    };
    struct s3_list_page pg;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (s3_parse_list(bad[i], strlen(bad[i]), &pg) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_null(pg.objects);
    }
    /* a NUL inside the text */
    static const char nul[] =
        "<ListBucketResult><Contents><Key>a\0b</Key><Size>1</Size></Contents></ListBucketResult>";
    assert_int_equal(s3_parse_list(nul, sizeof nul - 1, &pg), -1);
}

/* Every proper prefix of a valid page is rejected, and frees what it had built. */
static void test_parse_truncated_everywhere(void **state)
{
    struct s3_list_page pg;
    size_t n = strlen(AWS_PAGE);
    (void)state;
    while (n && (AWS_PAGE[n - 1] == '\n'))
        n--;
    for (size_t cut = 0; cut < n; cut++) {
        char *copy = malloc(cut + 1); /* exact size, so ASan sees any overread */
        memcpy(copy, AWS_PAGE, cut);
        if (s3_parse_list(copy, cut, &pg) != -1)
            fail_msg("a page cut at %zu bytes was accepted", cut);
        free(copy);
    }
    assert_int_equal(s3_parse_list(AWS_PAGE, n, &pg), 0);
    s3_list_page_free(&pg);
}

static void test_parse_depth_and_key_caps(void **state)
{
    struct s3_list_page pg;
    char key[S3_MAX_KEY_LEN + 2], doc[4096];
    (void)state;
    /* 16 levels are fine, 17 are not */
    const char *deep16 =
        "<ListBucketResult><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>"
        "</a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></ListBucketResult>";
    const char *deep17 =
        "<ListBucketResult><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>"
        "</a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></ListBucketResult>";
    assert_int_equal(s3_parse_list(deep16, strlen(deep16), &pg), 0);
    s3_list_page_free(&pg);
    assert_int_equal(s3_parse_list(deep17, strlen(deep17), &pg), -1);
    /* a 1024-byte key is S3's maximum; 1025 is refused */
    memset(key, 'k', sizeof key);
    key[S3_MAX_KEY_LEN] = 0;
    snprintf(doc, sizeof doc, "<Contents><Key>%s</Key><Size>1</Size></Contents>", key);
    assert_int_equal(parse_body(doc, &pg), 0);
    assert_int_equal(strlen(pg.objects[0].key), S3_MAX_KEY_LEN);
    s3_list_page_free(&pg);
    key[S3_MAX_KEY_LEN] = 'k';
    key[S3_MAX_KEY_LEN + 1] = 0;
    snprintf(doc, sizeof doc, "<Contents><Key>%s</Key><Size>1</Size></Contents>", key);
    assert_int_equal(parse_body(doc, &pg), -1);
    /* an entity-encoded key is measured after decoding */
    char amp[S3_MAX_KEY_LEN * 5 + 1] = "";
    for (int i = 0; i < S3_MAX_KEY_LEN; i++)
        strcat(amp, "&amp;");
    char *big = malloc(sizeof amp + 200);
    int n = snprintf(big, sizeof amp + 200,
                     "<ListBucketResult><Contents><Key>%s</Key><Size>1</Size>"
                     "</Contents></ListBucketResult>",
                     amp);
    assert_int_equal(s3_parse_list(big, (size_t)n, &pg), 0);
    assert_int_equal(strlen(pg.objects[0].key), S3_MAX_KEY_LEN);
    s3_list_page_free(&pg);
    free(big);
}

/* A page of count entries. */
static char *many(int count, size_t *len)
{
    kc_writer w;
    char e[96];
    kc_writer_init(&w, 0);
    kc_w_raw(&w, "<ListBucketResult>", 18);
    for (int i = 0; i < count; i++) {
        int n = snprintf(e, sizeof e, "<Contents><Key>k%07d</Key><Size>%d</Size></Contents>", i, i);
        kc_w_raw(&w, e, (size_t)n);
    }
    kc_w_raw(&w, "</ListBucketResult>", 19);
    assert_int_equal(w.err, 0);
    *len = w.len;
    return (char *)w.p;
}

static void test_parse_huge_counts(void **state)
{
    struct s3_list_page pg;
    size_t len;
    (void)state;
    char *doc = many(S3_MAX_LIST_OBJECTS, &len);
    assert_int_equal(s3_parse_list(doc, len, &pg), 0);
    assert_int_equal(pg.n, S3_MAX_LIST_OBJECTS);
    assert_string_equal(pg.objects[S3_MAX_LIST_OBJECTS - 1].key, "k0009999");
    assert_int_equal(pg.objects[1234].size, 1234);
    s3_list_page_free(&pg);
    free(doc);
    doc = many(S3_MAX_LIST_OBJECTS + 1, &len);
    assert_int_equal(s3_parse_list(doc, len, &pg), -1);
    assert_null(pg.objects);
    free(doc);
    /* a body past the cap is refused before it is looked at */
    char *blob = malloc(S3_MAX_LIST_BODY + 1);
    memset(blob, ' ', S3_MAX_LIST_BODY + 1);
    assert_int_equal(s3_parse_list(blob, S3_MAX_LIST_BODY + 1, &pg), -1);
    free(blob);
}

static void test_parse_error(void **state)
{
    char out[256];
    (void)state;
    const char *e =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>"
        "<Message>The request signature we calculated does not match &amp; so on</Message>"
        "<StringToSign>AWS4</StringToSign><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    assert_int_equal(s3_parse_error(e, strlen(e), out, sizeof out), 0);
    assert_string_equal(
        out, "SignatureDoesNotMatch: The request signature we calculated does not match & so on");
    e = "<Error><Code>NoSuchKey</Code></Error>";
    assert_int_equal(s3_parse_error(e, strlen(e), out, sizeof out), 0);
    assert_string_equal(out, "NoSuchKey");
    e = "<Error><Resource>x</Resource></Error>";
    assert_int_equal(s3_parse_error(e, strlen(e), out, sizeof out), -1);
    e = "<html>502 Bad Gateway</html>";
    assert_int_equal(s3_parse_error(e, strlen(e), out, sizeof out), -1);
    assert_int_equal(s3_parse_error("", 0, out, sizeof out), -1);
    /* a long message is cut to fit, not refused */
    char big[3000];
    int n = snprintf(big, sizeof big,
                     "<Error><Code>SlowDown</Code><Message>%02000d</Message></Error>", 7);
    assert_int_equal(s3_parse_error(big, (size_t)n, out, sizeof out), 0);
    assert_int_equal(strncmp(out, "SlowDown: 000", 13), 0);
    assert_int_equal(strlen(out), sizeof out - 1);
}

static void test_parse_uri(void **state)
{
    char b[64], p[S3_MAX_KEY_LEN + 1];
    (void)state;
    assert_int_equal(s3_parse_uri("s3://bucket/some/prefix/", b, sizeof b, p, sizeof p), 0);
    assert_string_equal(b, "bucket");
    assert_string_equal(p, "some/prefix/");
    assert_int_equal(s3_parse_uri("s3://my.bucket-1", b, sizeof b, p, sizeof p), 0);
    assert_string_equal(b, "my.bucket-1");
    assert_string_equal(p, "");
    assert_int_equal(s3_parse_uri("S3://b/", b, sizeof b, p, sizeof p), 0);
    assert_string_equal(p, "");
    assert_int_equal(s3_parse_uri("s3://b/x y/\xC3\xBC", b, sizeof b, p, sizeof p), 0);
    assert_string_equal(p, "x y/\xC3\xBC");
    static const char *bad[] = {
        "",           "s3://",      "s3:///prefix", "http://b/p",  "s3:/b/p",
        "s3://b c/p", "s3://b?x/p", "s3://b#/p",    "s3://b%20/p", "bucket/prefix"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(s3_parse_uri(bad[i], b, sizeof b, p, sizeof p), -1);
    assert_int_equal(s3_parse_uri(NULL, b, sizeof b, p, sizeof p), -1);
    assert_int_equal(s3_parse_uri("s3://bucket/p", b, 6, p, sizeof p),
                     -1); /* no room for the NUL */
    assert_int_equal(s3_parse_uri("s3://bucket/prefix", b, sizeof b, p, 6), -1);
}

static void test_uri_encode(void **state)
{
    char out[256];
    (void)state;
    static const struct {
        const char *in, *slash, *noslash;
    } cases[] = {
        {"plain-._~AZaz09", "plain-._~AZaz09", "plain-._~AZaz09"},
        {"with space", "with%20space", "with%20space"},
        {"a/b/c", "a/b/c", "a%2Fb%2Fc"},
        {"\xC3\xBC\xE4\xB8\xAD", "%C3%BC%E4%B8%AD", "%C3%BC%E4%B8%AD"},
        {"+%=&?#", "%2B%25%3D%26%3F%23", "%2B%25%3D%26%3F%23"},
        {"%41", "%2541", "%2541"},
        {"*!'();:@$,[]", "%2A%21%27%28%29%3B%3A%40%24%2C%5B%5D",
         "%2A%21%27%28%29%3B%3A%40%24%2C%5B%5D"},
        {"\x01\x7F\xFF", "%01%7F%FF", "%01%7F%FF"},
        {"", "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = s3_uri_encode(out, sizeof out, cases[i].in, strlen(cases[i].in), true);
        assert_int_equal(n, (int)strlen(cases[i].slash));
        assert_string_equal(out, cases[i].slash);
        s3_uri_encode(out, sizeof out, cases[i].in, strlen(cases[i].in), false);
        assert_string_equal(out, cases[i].noslash);
    }
    /* exactly enough room, and one byte short */
    assert_int_equal(s3_uri_encode(out, 4, " ", 1, true), 3);
    assert_int_equal(s3_uri_encode(out, 3, " ", 1, true), -1);
    assert_int_equal(s3_uri_encode(out, 2, "ab", 2, true), -1);
    assert_int_equal(s3_uri_encode(out, 1, "", 0, true), 0);
}

static void test_urls(void **state)
{
    (void)state;
    char *u = s3_object_url("http://127.0.0.1:4568", "bkt", "dir a/\xC3\xBC+%=&?#/x");
    assert_string_equal(u, "http://127.0.0.1:4568/bkt/dir%20a/%C3%BC%2B%25%3D%26%3F%23/x");
    free(u);
    u = s3_object_url("https://s3.us-east-1.amazonaws.com", "b", "a/../b/./c");
    assert_string_equal(u, "https://s3.us-east-1.amazonaws.com/b/a/../b/./c");
    free(u);
    u = s3_list_url("http://h:1", "b", "x y/+", "1ueG/cx+LP=", 1000);
    assert_string_equal(
        u, "http://h:1/"
           "b?continuation-token=1ueG%2Fcx%2BLP%3D&list-type=2&max-keys=1000&prefix=x%20y%2F%2B");
    free(u);
    u = s3_list_url("http://h:1", "b", "", NULL, 5);
    assert_string_equal(u, "http://h:1/b?list-type=2&max-keys=5");
    free(u);
}

/* --- on the loop --- */

struct got {
    int calls;
    struct s3_result r;
    char msg[640];
    struct ev_loop *loop;
};

static void on_get(void *arg, const struct s3_result *r)
{
    struct got *g = arg;
    g->calls++;
    g->r = *r;
    snprintf(g->msg, sizeof g->msg, "%s", r->message ? r->message : "");
    g->r.message = g->msg;
    g->r.body = NULL;
    ev_stop(g->loop);
}

static void on_never(void *arg, const struct s3_result *r)
{
    (void)r;
    ((struct got *)arg)->calls++;
}

static void on_list_never(void *arg, const struct s3_list_page *pg)
{
    (void)pg;
    ((struct got *)arg)->calls++;
}

/* A loopback port that refuses connections: bound, never listened on. */
static int closed_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &al), 0);
    return ntohs(a.sin_port);
}

static void test_client_config_and_args(void **state)
{
    struct ev_loop *l = ev_new();
    struct s3_config cfg = {0};
    struct got g = {.loop = l};
    char longkey[S3_MAX_KEY_LEN + 2];
    (void)state;
    snprintf(cfg.endpoint, sizeof cfg.endpoint, "ftp://x");
    assert_null(s3_new(l, &cfg));
    snprintf(cfg.endpoint, sizeof cfg.endpoint, "http://127.0.0.1:1/");
    snprintf(cfg.region, sizeof cfg.region, "us east");
    assert_null(s3_new(l, &cfg));
    cfg.region[0] = 0;
    struct s3_client *c = s3_new(l, &cfg);
    assert_non_null(c);
    memset(longkey, 'k', sizeof longkey);
    longkey[sizeof longkey - 1] = 0;
    assert_int_equal(s3_get(c, "", "k", 0, 0, NULL, on_never, &g), -1);
    assert_int_equal(s3_get(c, "b", "", 0, 0, NULL, on_never, &g), -1);
    assert_int_equal(s3_get(c, "b", longkey, 0, 0, NULL, on_never, &g), -1);
    assert_int_equal(s3_get(c, "b", "k", -1, 10, NULL, on_never, &g), -1);
    assert_int_equal(s3_get(c, "b", "k", 10, -1, NULL, on_never, &g), -1);
    assert_int_equal(s3_get(c, "b", "k", 10, 0, NULL, on_never, &g), -1);
    assert_int_equal(s3_get(c, "b", "k", INT64_MAX, 2, NULL, on_never, &g), -1);
    assert_int_equal(s3_get(c, "b", "k", 0, 0, NULL, NULL, &g), -1);
    assert_int_equal(s3_list(c, "b", longkey, NULL, 10, on_list_never, &g), -1);
    struct s3_stats st;
    s3_stats(c, &st);
    assert_int_equal(st.requests, 0);
    assert_int_equal(st.inflight, 0);
    s3_free(c);
    s3_free(NULL);
    ev_free(l);
    assert_int_equal(g.calls, 0);
}

static void test_retries_run_out_on_refused(void **state)
{
    struct ev_loop *l = ev_new();
    struct s3_config cfg = {.max_retries = 2, .backoff_base_ms = 1};
    struct got g = {.loop = l};
    int fd, port = closed_port(&fd);
    (void)state;
    snprintf(cfg.endpoint, sizeof cfg.endpoint, "http://127.0.0.1:%d", port);
    snprintf(cfg.access_key, sizeof cfg.access_key, "AK");
    snprintf(cfg.secret_key, sizeof cfg.secret_key, "SK");
    struct s3_client *c = s3_new(l, &cfg);
    assert_int_equal(s3_get(c, "b", "k", 0, 100, NULL, on_get, &g), 0);
    ev_run(l);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.err, S3_EUNAVAIL);
    assert_int_equal(g.r.attempts, 3);
    assert_int_equal(g.r.http_status, 0);
    assert_int_equal(g.r.len, 0);
    assert_non_null(strstr(g.msg, "gave up after 3 attempts"));
    struct s3_stats st;
    s3_stats(c, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.inflight, 0);
    s3_free(c);
    close(fd);
    ev_free(l);
}

/* s3_free with requests running, backing off and queued: no callback runs, nothing
 * leaks (ASan checks), and the loop is left with no timer or fd of ours. */
static void stop_loop(struct ev_loop *l, void *arg)
{
    ev_stop(l);
}

static void test_free_with_requests_in_flight(void **state)
{
    struct ev_loop *l = ev_new();
    struct s3_config cfg = {.max_retries = 50, .backoff_base_ms = 1000, .max_inflight = 2};
    struct got g = {.loop = l};
    struct ev_timer t;
    int fd, port = closed_port(&fd);
    (void)state;
    snprintf(cfg.endpoint, sizeof cfg.endpoint, "http://127.0.0.1:%d", port);
    struct s3_client *c = s3_new(l, &cfg);
    for (int i = 0; i < 6; i++)
        assert_int_equal(s3_get(c, "b", "k", 0, 0, NULL, on_never, &g), 0);
    assert_int_equal(s3_list(c, "b", "p/", NULL, 0, on_list_never, &g), 0);
    ev_timer_init(&t, stop_loop, NULL);
    ev_timer_start(l, &t, 50000);
    ev_run(l);
    struct s3_stats st;
    s3_stats(c, &st);
    assert_int_equal(st.inflight, 2);
    assert_int_equal(st.queued, 5);
    assert_true(st.retries >= 2);
    s3_free(c);
    assert_int_equal(g.calls, 0);
    close(fd);
    ev_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_aws_page),
        cmocka_unit_test(test_parse_empty_and_last_page),
        cmocka_unit_test(test_parse_entities),
        cmocka_unit_test(test_parse_bad_entities),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_truncated_everywhere),
        cmocka_unit_test(test_parse_depth_and_key_caps),
        cmocka_unit_test(test_parse_huge_counts),
        cmocka_unit_test(test_parse_error),
        cmocka_unit_test(test_parse_uri),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_client_config_and_args),
        cmocka_unit_test(test_retries_run_out_on_refused),
        cmocka_unit_test(test_free_with_requests_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
