#ifndef SLUICE_PROXY_APP_CA_COMMAND_H_
#define SLUICE_PROXY_APP_CA_COMMAND_H_

#include <string>

#include "common/time/clock.h"

namespace sluice {

// `sluice-proxy ca ...`: the life of the local CA that signs the
// certificates of intercepted hosts (docs/https.md).
//   ca init --out DIR     writes a new CA (DIR/ca.pem, DIR/ca-key.pem with
//                         mode 0600) and DIR/bundle.pem
//   ca bundle --dir DIR   writes DIR/bundle.pem again: the system roots,
//                         then DIR/ca.pem (after the roots change)
// bundle.pem is for clients whose trust setting replaces the system store
// (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, Java truststores).
//
// `argv` starts after "ca". Messages go to `out` (success) or `err`;
// returns the exit code: 0, 1 (the operation failed), 2 (bad arguments).
// `clock` dates the CA.
int RunCaCommand(int argc, const char* const* argv, const Clock* clock,
                 std::string* out, std::string* err);

}  // namespace sluice

#endif  // SLUICE_PROXY_APP_CA_COMMAND_H_
