/* The ABI layout as the C compiler sees it, for layout_test.cpp to compare with the C++ compiler's view: a plugin
 * written in C and a host written in C++ must agree on every offset. */
#include <firelink/firelink.h>

#include "layout_table.h"

/* (offset, size) of each field, then sizeof, struct after struct, then the minimum sizes: layout_table.h's order. */
#define FL_PROBE_FIELD(type, field, lp64_offset) offsetof(type, field), sizeof(((type *)0)->field),
#define FL_PROBE_SIZE(type, lp64_size) sizeof(type),

extern const size_t fl_probe_c_layout[];
extern const size_t fl_probe_c_layout_count;

const size_t fl_probe_c_layout[] = {FL_TEST_LAYOUT(FL_PROBE_FIELD, FL_PROBE_SIZE) FL_TEST_LAYOUT_MINIMUM_SIZES};

const size_t fl_probe_c_layout_count = sizeof fl_probe_c_layout / sizeof fl_probe_c_layout[0];
