/*
 * fields.c — parsed HTTP header fields as the protocol's header lists.
 */
#include <stdlib.h>

#include "fields.h"
#include "http1.h"
#include "wire.h"

json_t *
fields_to_json(const struct http1_header *h, size_t n)
{
    json_t *list = json_array();
    char small[512];

    for (size_t i = 0; list != NULL && i < n; i++) {
        char *value =
            h[i].value_len < sizeof small ? small : malloc(h[i].value_len + 1);
        size_t len;

        if (value == NULL) {
            json_decref(list);
            return NULL;
        }
        len = http1_unfold_value(value, h[i].value, h[i].value_len);
        json_array_append_new(
            list,
            json_pack("[o,o]", wire_string_from_bytes(h[i].name, h[i].name_len),
                      wire_string_from_bytes(value, len)));
        if (value != small)
            free(value);
    }
    return list;
}

json_t *
fields_answer_to_json(int status, const char *reason, size_t reason_len,
                      const struct http1_header *h, size_t n)
{
    return json_pack("{s:i, s:o, s:o}", "status", status, "reason",
                     wire_string_from_bytes(reason, reason_len), "headers",
                     fields_to_json(h, n));
}
