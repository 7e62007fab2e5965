/* One message with every kind of value payload.h writes, as one piece of source that both compilers build:
 * payload_c_probe.c writes it as C, payload_c_test.cpp as C++, and the test requires the same bytes from both. */
#ifndef FIRELINK_TEST_PAYLOAD_SAMPLE_H
#define FIRELINK_TEST_PAYLOAD_SAMPLE_H

#include <firelink/payload.h>

/* A map of 7 (the last two pairs written key and value apart): int, string, an int64 below INT32_MIN, double, bool,
 * nil, and an array of a uint and a string with an embedded NUL. */
static inline void fl_test_write_payload_sample(fl_mp_writer *w) {
    fl_mp_map(w, 7);
    fl_mp_kv_int(w, "schema", 1);
    fl_mp_kv_str(w, "kind", "alarm");
    fl_mp_kv_int(w, "neg", INT32_MIN - (int64_t)1);
    fl_mp_kv_double(w, "lel", 27.5);
    fl_mp_kv_bool(w, "latched", 1);
    fl_mp_str(w, "none");
    fl_mp_nil(w);
    fl_mp_str(w, "values");
    fl_mp_array(w, 2);
    fl_mp_uint(w, 65536);
    fl_mp_str_n(w, "a\0b", 3);
}

#endif /* FIRELINK_TEST_PAYLOAD_SAMPLE_H */
