#ifndef SLUICE_QUOTA_SERVER_SERVER_STATUS_PAGE_H_
#define SLUICE_QUOTA_SERVER_SERVER_STATUS_PAGE_H_

#include <string>

#include "quota-server/core/quota_allocator.h"

namespace sluice {

// The quota server's status page and the JSON it draws, rendered from an
// allocator snapshot. Pure functions of their inputs (thread-safe, no
// time), so they are unit-tested without sockets.

// GET /status: the snapshot as JSON (Boost.JSON):
//   {"epoch":..,"config_version":..,"connected_streams":..,
//    "ignored_reports":..,
//    "resources":[{"name":..,"rate_per_second":..,"burst":..,"level":..,
//      "outstanding":..,"granted_per_second":..,"utilisation":..,
//      "learning":..,"sidecars":[{"id":..,"pod":..,"connected":..,
//      "weight":..,"demand_per_second":..,"share_per_second":..,
//      "outstanding":..,"granted_total":..}]}]}
std::string StatusJson(const QuotaAllocator::Status& status);

// GET /: a self-refreshing HTML page that fetches /status every second and
// draws, per resource, the limit, the use and each sidecar's share. The
// page is quota-server/server/status_page.html, compiled in at build time
// (status_page_html.cc.in); the same object on every call.
const std::string& StatusPageHtml();

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_SERVER_STATUS_PAGE_H_
