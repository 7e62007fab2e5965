/* payload.h compiled by the C compiler: payload_c_test.cpp checks that it writes the same bytes as the C++ build of
 * the same header, and reads them the same way. */
#include <firelink/payload.h>

size_t fl_probe_c_write_sample(uint8_t *buf, size_t cap, int *overflow);
int fl_probe_c_find_int(const uint8_t *data, size_t size, const char *key, int64_t *out);

size_t fl_probe_c_write_sample(uint8_t *buf, size_t cap, int *overflow) {
    fl_mp_writer w;
    fl_mp_writer_init(&w, buf, cap);
    fl_mp_map(&w, 7);
    fl_mp_kv_int(&w, "schema", 1);
    fl_mp_kv_str(&w, "kind", "alarm");
    fl_mp_kv_int(&w, "neg", INT32_MIN - (int64_t)1);
    fl_mp_kv_double(&w, "lel", 27.5);
    fl_mp_kv_bool(&w, "latched", 1);
    fl_mp_str(&w, "none");
    fl_mp_nil(&w);
    fl_mp_str(&w, "values");
    fl_mp_array(&w, 2);
    fl_mp_uint(&w, 65536);
    fl_mp_str_n(&w, "a\0b", 3);
    *overflow = w.overflow;
    return w.len;
}

int fl_probe_c_find_int(const uint8_t *data, size_t size, const char *key, int64_t *out) {
    fl_mp_value v;
    if (!fl_mp_find(data, size, key, &v) || v.type != FL_MP_INT) return 0;
    *out = v.i;
    return 1;
}
