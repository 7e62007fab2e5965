// Conformance certificates (docs/certifiers-guide.md, "Certificates"): a passed run's report as an in-toto Statement
// whose subject is the plugin file's SHA-256, in a DSSE envelope signed with the certifier's Ed25519 key; and
// `firelink-conform verify`, the offline check of one (firelink::signing::check_certificate, as the host makes it).
#pragma once

#include <string>
#include <vector>

#include <firelink/result.hpp>
#include <firelink/signing/certificate.hpp>

#include "report.hpp"

namespace firelink::conform {

// The Statement of a run: subject the plugin file, predicate the whole report (`report_json`, to_json of the run)
// with the command line that made it.
std::string certificate_statement(const run_record &r, const std::string &report_json, const std::string &command_line);

// `firelink-conform verify CERT --public-key PUB... --plugin PLUGIN [--level L]`: 0 valid, 1 not, 2 usage.
int verify_main(int argc, char **argv);

}  // namespace firelink::conform
