/* firelink: the minimal msgpack writer and reader for plugins written in C.
 *
 * Events, configs and commands cross the ABI as msgpack. A C++ plugin uses payload.hpp; a C plugin uses these
 * header-only helpers, which write into a caller's buffer (no allocation) and read flat maps.
 *
 *     uint8_t buf[256];
 *     fl_mp_writer w;
 *     fl_mp_writer_init(&w, buf, sizeof buf);
 *     fl_mp_map(&w, 3);
 *     fl_mp_kv_str(&w, "kind", "telemetry");
 *     ...
 *     if (fl_mp_ok(&w)) host->emit(host, buf, w.len);
 *
 * Writing past the buffer sets w.overflow and writes nothing more; check fl_mp_ok before using the bytes.
 */
#ifndef FIRELINK_PAYLOAD_H
#define FIRELINK_PAYLOAD_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Writing --------------------------------------------------------------------------------------------------- */

typedef struct fl_mp_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow;
} fl_mp_writer;

static inline void fl_mp_writer_init(fl_mp_writer *w, uint8_t *buf, size_t cap) {
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = 0;
}

static inline int fl_mp_ok(const fl_mp_writer *w) { return !w->overflow; }

static inline void fl_mp__put(fl_mp_writer *w, const void *data, size_t n) {
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    if (n) memcpy(w->buf + w->len, data, n);
    w->len += n;
}

static inline void fl_mp__put_be(fl_mp_writer *w, uint8_t tag, uint64_t v, int bytes) {
    uint8_t b[9];
    int i;
    b[0] = tag;
    for (i = 0; i < bytes; ++i) b[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    fl_mp__put(w, b, (size_t)(1 + bytes));
}

static inline void fl_mp_nil(fl_mp_writer *w) { fl_mp__put_be(w, 0xc0, 0, 0); }
static inline void fl_mp_bool(fl_mp_writer *w, int v) { fl_mp__put_be(w, v ? 0xc3 : 0xc2, 0, 0); }

static inline void fl_mp_uint(fl_mp_writer *w, uint64_t v) {
    if (v < 128) fl_mp__put_be(w, (uint8_t)v, 0, 0);
    else if (v <= 0xFFu) fl_mp__put_be(w, 0xcc, v, 1);
    else if (v <= 0xFFFFu) fl_mp__put_be(w, 0xcd, v, 2);
    else if (v <= 0xFFFFFFFFu) fl_mp__put_be(w, 0xce, v, 4);
    else fl_mp__put_be(w, 0xcf, v, 8);
}

static inline void fl_mp_int(fl_mp_writer *w, int64_t v) {
    if (v >= 0) fl_mp_uint(w, (uint64_t)v);
    else if (v >= -32) fl_mp__put_be(w, (uint8_t)(int8_t)v, 0, 0);
    else if (v >= INT8_MIN) fl_mp__put_be(w, 0xd0, (uint64_t)(uint8_t)(int8_t)v, 1);
    else if (v >= INT16_MIN) fl_mp__put_be(w, 0xd1, (uint64_t)(uint16_t)(int16_t)v, 2);
    else if (v >= INT32_MIN) fl_mp__put_be(w, 0xd2, (uint64_t)(uint32_t)(int32_t)v, 4);
    else fl_mp__put_be(w, 0xd3, (uint64_t)v, 8);
}

static inline void fl_mp_double(fl_mp_writer *w, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    fl_mp__put_be(w, 0xcb, bits, 8);
}

static inline void fl_mp_str_n(fl_mp_writer *w, const char *s, size_t n) {
    if ((uint64_t)n > 0xFFFFFFFFu) { /* msgpack strings hold at most 2^32-1 bytes */
        w->overflow = 1;
        return;
    }
    if (n < 32) fl_mp__put_be(w, (uint8_t)(0xa0 | n), 0, 0);
    else if (n <= 0xFFu) fl_mp__put_be(w, 0xd9, n, 1);
    else if (n <= 0xFFFFu) fl_mp__put_be(w, 0xda, n, 2);
    else fl_mp__put_be(w, 0xdb, n, 4);
    fl_mp__put(w, s, n);
}

static inline void fl_mp_str(fl_mp_writer *w, const char *s) { fl_mp_str_n(w, s, strlen(s)); }

static inline void fl_mp_array(fl_mp_writer *w, uint32_t n) {
    if (n < 16) fl_mp__put_be(w, (uint8_t)(0x90 | n), 0, 0);
    else if (n <= 0xFFFFu) fl_mp__put_be(w, 0xdc, n, 2);
    else fl_mp__put_be(w, 0xdd, n, 4);
}

static inline void fl_mp_map(fl_mp_writer *w, uint32_t n) {
    if (n < 16) fl_mp__put_be(w, (uint8_t)(0x80 | n), 0, 0);
    else if (n <= 0xFFFFu) fl_mp__put_be(w, 0xde, n, 2);
    else fl_mp__put_be(w, 0xdf, n, 4);
}

static inline void fl_mp_kv_str(fl_mp_writer *w, const char *k, const char *v) { fl_mp_str(w, k); fl_mp_str(w, v); }
static inline void fl_mp_kv_int(fl_mp_writer *w, const char *k, int64_t v) { fl_mp_str(w, k); fl_mp_int(w, v); }
static inline void fl_mp_kv_double(fl_mp_writer *w, const char *k, double v) { fl_mp_str(w, k); fl_mp_double(w, v); }
static inline void fl_mp_kv_bool(fl_mp_writer *w, const char *k, int v) { fl_mp_str(w, k); fl_mp_bool(w, v); }

/* ---- Reading a flat map --------------------------------------------------------------------------------------
 * fl_mp_find(data, size, key, &value) looks up `key` in the top-level map of `data` and returns a view of its value.
 * Nested maps and arrays are skipped over correctly; it never reads past `size`, whatever the bytes. */

#define FL_MP_NONE   0  /* not found, or the input is not a well-formed map */
#define FL_MP_NIL    1
#define FL_MP_BOOL   2
#define FL_MP_INT    3  /* fits int64_t */
#define FL_MP_UINT   4  /* above INT64_MAX */
#define FL_MP_DOUBLE 5  /* float32 or float64 */
#define FL_MP_STR    6
#define FL_MP_OTHER  7  /* bin, array, map, ext: present but not a scalar */

typedef struct fl_mp_value {
    int type;
    int b;
    int64_t i;
    uint64_t u;
    double d;
    const char *str; /* points into the input; NOT NUL-terminated */
    size_t str_len;
} fl_mp_value;

typedef struct fl_mp__cursor {
    const uint8_t *p;
    const uint8_t *end;
    int depth;
} fl_mp__cursor;

static inline int fl_mp__take(fl_mp__cursor *c, size_t n, const uint8_t **out) {
    if ((size_t)(c->end - c->p) < n) return 0;
    *out = c->p;
    c->p += n;
    return 1;
}

static inline int fl_mp__be(fl_mp__cursor *c, int bytes, uint64_t *v) {
    const uint8_t *b;
    int i;
    if (!fl_mp__take(c, (size_t)bytes, &b)) return 0;
    *v = 0;
    for (i = 0; i < bytes; ++i) *v = (*v << 8) | b[i];
    return 1;
}

/* Reads one value; containers are skipped (their elements read and discarded) and reported as FL_MP_OTHER.
 * Returns 0 on truncated or malformed input. */
static inline int fl_mp__read(fl_mp__cursor *c, fl_mp_value *v) {
    const uint8_t *t;
    uint64_t n = 0, count = 0, k;
    int is_map = 0;
    memset(v, 0, sizeof *v);
    if (!fl_mp__take(c, 1, &t)) return 0;
    switch (*t) {
    case 0xc0: v->type = FL_MP_NIL; return 1;
    case 0xc2: case 0xc3: v->type = FL_MP_BOOL; v->b = *t == 0xc3; return 1;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (!fl_mp__be(c, 1 << (*t - 0xcc), &n)) return 0;
        if (n > (uint64_t)INT64_MAX) { v->type = FL_MP_UINT; v->u = n; }
        else { v->type = FL_MP_INT; v->i = (int64_t)n; }
        return 1;
    case 0xd0: if (!fl_mp__be(c, 1, &n)) return 0; v->type = FL_MP_INT; v->i = (int8_t)n; return 1;
    case 0xd1: if (!fl_mp__be(c, 2, &n)) return 0; v->type = FL_MP_INT; v->i = (int16_t)n; return 1;
    case 0xd2: if (!fl_mp__be(c, 4, &n)) return 0; v->type = FL_MP_INT; v->i = (int32_t)n; return 1;
    case 0xd3: if (!fl_mp__be(c, 8, &n)) return 0; v->type = FL_MP_INT; v->i = (int64_t)n; return 1;
    case 0xca: {
        uint32_t bits; float f;
        if (!fl_mp__be(c, 4, &n)) return 0;
        bits = (uint32_t)n; memcpy(&f, &bits, sizeof f);
        v->type = FL_MP_DOUBLE; v->d = f; return 1;
    }
    case 0xcb: if (!fl_mp__be(c, 8, &n)) return 0; v->type = FL_MP_DOUBLE; memcpy(&v->d, &n, sizeof v->d); return 1;
    case 0xd9: case 0xda: case 0xdb:
        if (!fl_mp__be(c, 1 << (*t - 0xd9), &n)) return 0;
        v->type = FL_MP_STR; v->str_len = (size_t)n;
        return fl_mp__take(c, (size_t)n, (const uint8_t **)&v->str);
    case 0xc4: case 0xc5: case 0xc6:
        if (!fl_mp__be(c, 1 << (*t - 0xc4), &n)) return 0;
        v->type = FL_MP_OTHER; return fl_mp__take(c, (size_t)n, &t);
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        v->type = FL_MP_OTHER; return fl_mp__take(c, (size_t)1 + ((size_t)1 << (*t - 0xd4)), &t);
    case 0xc7: case 0xc8: case 0xc9:
        if (!fl_mp__be(c, 1 << (*t - 0xc7), &n)) return 0;
        v->type = FL_MP_OTHER; return fl_mp__take(c, (size_t)n + 1, &t);
    case 0xdc: case 0xdd: if (!fl_mp__be(c, *t == 0xdc ? 2 : 4, &count)) return 0; break;
    case 0xde: case 0xdf: if (!fl_mp__be(c, *t == 0xde ? 2 : 4, &count)) return 0; is_map = 1; break;
    default:
        if (*t <= 0x7f) { v->type = FL_MP_INT; v->i = *t; return 1; }
        if (*t >= 0xe0) { v->type = FL_MP_INT; v->i = (int8_t)*t; return 1; }
        if ((*t & 0xe0) == 0xa0) {
            v->type = FL_MP_STR; v->str_len = *t & 0x1f;
            return fl_mp__take(c, v->str_len, (const uint8_t **)&v->str);
        }
        if ((*t & 0xf0) == 0x90) { count = *t & 0x0f; break; }
        if ((*t & 0xf0) == 0x80) { count = *t & 0x0f; is_map = 1; break; }
        return 0; /* 0xc1 is never used */
    }
    /* a container: skip its elements, bounded in depth so hostile input cannot exhaust the stack */
    if (c->depth >= 64) return 0;
    if (is_map) count *= 2;
    c->depth++;
    for (k = 0; k < count; ++k) {
        fl_mp_value inner;
        if (!fl_mp__read(c, &inner)) return 0;
    }
    c->depth--;
    memset(v, 0, sizeof *v);
    v->type = FL_MP_OTHER;
    return 1;
}

/* Finds `key` in the top-level map. Returns 1 and fills *out when found; 0 when absent or when the bytes up to the
 * key are malformed (out->type is FL_MP_NONE then). An empty input (size 0) is an empty map.
 * It reads only as far as the key it finds: call fl_mp_is_map once first to refuse malformed input as a whole. */
static inline int fl_mp_find(const uint8_t *data, size_t size, const char *key, fl_mp_value *out) {
    fl_mp__cursor c;
    const uint8_t *t;
    uint64_t count = 0, k;
    size_t key_len = strlen(key);
    memset(out, 0, sizeof *out);
    if (data == NULL || size == 0) return 0;
    c.p = data; c.end = data + size; c.depth = 0;
    if (!fl_mp__take(&c, 1, &t)) return 0;
    if ((*t & 0xf0) == 0x80) count = *t & 0x0f;
    else if (*t == 0xde) { if (!fl_mp__be(&c, 2, &count)) return 0; }
    else if (*t == 0xdf) { if (!fl_mp__be(&c, 4, &count)) return 0; }
    else return 0;
    for (k = 0; k < count; ++k) {
        fl_mp_value kv, vv;
        if (!fl_mp__read(&c, &kv) || !fl_mp__read(&c, &vv)) { memset(out, 0, sizeof *out); return 0; }
        if (kv.type == FL_MP_STR && kv.str_len == key_len && memcmp(kv.str, key, key_len) == 0) {
            *out = vv;
            return 1;
        }
    }
    return 0;
}

/* Returns 1 when `data` is exactly one well-formed msgpack map (an empty input counts as an empty map), else 0. */
static inline int fl_mp_is_map(const uint8_t *data, size_t size) {
    fl_mp__cursor c;
    fl_mp_value v;
    if (size == 0) return 1;
    if (data == NULL) return 0;
    if (!((data[0] & 0xf0) == 0x80 || data[0] == 0xde || data[0] == 0xdf)) return 0;
    c.p = data; c.end = data + size; c.depth = 0;
    return fl_mp__read(&c, &v) && c.p == c.end;
}

#ifdef __cplusplus
}
#endif

#endif /* FIRELINK_PAYLOAD_H */
