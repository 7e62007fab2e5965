// firelink-host audit verify: the audit chain checked offline, from the file alone (the host may be running).
#include <cstdio>
#include <exception>

#include <firelink/control/audit_log.hpp>
#include <firelink/text.hpp>

#include "commands.hpp"

namespace firelink::cli {

int verify_audit(const std::string &db, std::size_t show) {
    try {
        const auto check = control::audit_log::verify(db);
        if (show && check.last_seq) {
            control::audit_log log(db, control::audit_log::minimum_keep);
            const auto from = check.last_seq > show ? check.last_seq - show : 0;
            for (const auto &e : log.list(from, show)) {
                auto r = e.record;
                r["seq"] = e.seq;
                r["wall_ms"] = e.wall_ms;
                r["hash"] = e.hash;
                std::printf("%s\n", firelink::text::dump_json(r).c_str());
            }
        }
        if (check.ok) {
            std::printf("%s: the audit chain holds: %s\n", db.c_str(), check.why.c_str());
            return 0;
        }
        std::printf("%s: the audit chain is BROKEN at %s\n", db.c_str(), check.why.c_str());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s: %s\n", db.c_str(), e.what());
        return 1;
    }
}

}  // namespace firelink::cli
