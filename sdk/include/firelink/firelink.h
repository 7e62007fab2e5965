/* firelink v1 plugin ABI: include this one header to write a plugin in C. */
#ifndef FIRELINK_FIRELINK_H
#define FIRELINK_FIRELINK_H

#include "abi.h"
#include "host.h"
#include "plugin.h"
#include "ext/conditions.h"
#include "ext/commit.h"
#include "ext/identify.h"
#include "ext/timer.h"
#include "ext/transport.h"
#include "layout.h"

#endif /* FIRELINK_FIRELINK_H */
