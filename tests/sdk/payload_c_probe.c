/* payload.h compiled by the C compiler: payload_c_test.cpp checks that it writes the same bytes as the C++ build of
 * the same header, and reads them the same way. */
#include <firelink/payload.h>

#include "payload_sample.h"

size_t fl_probe_c_write_sample(uint8_t *buf, size_t cap, int *overflow);
int fl_probe_c_find_int(const uint8_t *data, size_t size, const char *key, int64_t *out);

size_t fl_probe_c_write_sample(uint8_t *buf, size_t cap, int *overflow) {
    fl_mp_writer w;
    fl_mp_writer_init(&w, buf, cap);
    fl_test_write_payload_sample(&w);
    *overflow = w.overflow;
    return w.len;
}

int fl_probe_c_find_int(const uint8_t *data, size_t size, const char *key, int64_t *out) {
    fl_mp_value v;
    if (!fl_mp_find(data, size, key, &v) || v.type != FL_MP_INT) return 0;
    *out = v.i;
    return 1;
}
