/* fuzz_s3_list.c: libFuzzer target for the ListObjectsV2 response parser. The input is
 * the XML body, in a heap buffer of its exact size (not NUL-terminated, as a body
 * received over HTTP need not be). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3_list_page page;

    char *xml = malloc(size ? size : 1);
    if (!xml)
        return 0;
    memcpy(xml, data, size);
    memset(&page, 0, sizeof page);
    s3_parse_list(xml, size, &page);
    s3_list_page_free(&page);
    free(xml);
    return 0;
}
