/* s3_parse.h: the S3 client's pure parts (s3_parse.c): canonical URLs, XML bodies and
 * helpers s3.c shares with it. s3.h declares the parsers that are part of the
 * client's contract (s3_parse_list, s3_list_page_free, s3_parse_uri); these are the
 * rest, for s3.c, unit tests and fuzzers. */
#ifndef SLUICE_S3_PARSE_H
#define SLUICE_S3_PARSE_H

#include "s3.h"

/* Percent-encodes s[0..n) per RFC 3986: every byte except A-Z a-z 0-9 - . _ ~ becomes
 * %XX (upper-case hex); '/' is kept when keep_slash. Writes a NUL-terminated string.
 * Returns its length, or -1 if it does not fit in outlen. */
int s3_uri_encode(char *out, size_t outlen, const char *s, size_t n, bool keep_slash);

/* The canonical URL of an object, {endpoint}/{bucket}/{key}, with the bucket and each
 * key segment encoded. endpoint has no trailing '/'. Returns a heap string or NULL. */
char *s3_object_url(const char *endpoint, const char *bucket, const char *key);

/* The canonical URL of a ListObjectsV2 page: the query keys sorted and encoded, as
 * SigV4 signs them. continuation and prefix may be NULL or empty (then left out).
 * Returns a heap string or NULL. */
char *s3_list_url(const char *endpoint, const char *bucket, const char *prefix,
                  const char *continuation, int max_keys);

/* Parses an S3 <Error> body into "Code: Message" (or just one of them) in out.
 * Returns 0, or -1 if the body holds no Code or Message. */
int s3_parse_error(const char *xml, size_t len, char *out, size_t outlen);

/* A non-negative decimal int64 that fills s[0..n) exactly, or -1. */
int64_t s3_parse_i64(const char *s, size_t n);

/* Copies an ETag without its quotes (and W/ prefix) into out, NUL-terminated. Returns 0,
 * or -1 when it does not fit. */
int s3_etag_copy(char *out, size_t outcap, const char *s, size_t n);

#endif
