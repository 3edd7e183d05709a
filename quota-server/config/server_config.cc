#include "quota-server/config/server_config.h"

#include <arpa/inet.h>

#include <chrono>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/config/config_yaml.h"
#include "common/time/duration.h"

namespace sluice {
namespace {

constexpr double kMaxTokens = 1e12;
constexpr Duration kMaxTtl = std::chrono::hours(1);
constexpr Duration kMaxPeriod = std::chrono::hours(24 * 365);
constexpr Duration kMinLeaseDuration = std::chrono::milliseconds(1);

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::string Join(std::string_view path, std::string_view key) {
  return absl::StrCat(Sv(path), ".", Sv(key));
}

absl::Status FieldError(std::string_view path, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(path), ": ", Sv(reason)));
}

// "host:port" with an IP literal host ("[v6]:port" for IPv6).
bool IsValidListen(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string host(text.substr(0, colon));
  const std::string_view port_text = text.substr(colon + 1);
  uint32_t port = 0;
  if (port_text.empty() || !absl::SimpleAtoi(Sv(port_text), &port) ||
      port > 65535 || !absl::ascii_isdigit(port_text[0])) {
    return false;
  }
  unsigned char buf[16];
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    return inet_pton(AF_INET6, host.c_str(), buf) == 1;
  }
  return inet_pton(AF_INET, host.c_str(), buf) == 1;
}

absl::Status ValidateLease(const LeaseTuning& lease, const std::string& path) {
  auto positive = [&](Duration d, const char* field) -> absl::Status {
    if (d < kMinLeaseDuration) {
      return FieldError(Join(path, field), "must be at least 1ms");
    }
    if (d > kMaxTtl) return FieldError(Join(path, field), "must be <= 1h");
    return absl::OkStatus();
  };
  for (auto [d, field] :
       {std::pair{lease.ttl, "ttl"}, std::pair{lease.horizon, "horizon"},
        std::pair{lease.refresh, "refresh"}}) {
    absl::Status status = positive(d, field);
    if (!status.ok()) return status;
  }
  if (lease.grace < Duration::zero() || lease.grace > kMaxTtl) {
    return FieldError(Join(path, "grace"), "must be >= 0 and <= 1h");
  }
  if (lease.refresh * 2 > lease.ttl) {
    return FieldError(Join(path, "refresh"),
                      "must be <= ttl / 2 (a grant's tokens live ttl from "
                      "the report it answers, which may be a refresh old)");
  }
  if (lease.horizon > lease.ttl) {
    return FieldError(Join(path, "horizon"), "must be <= ttl");
  }
  return absl::OkStatus();
}

absl::Status ValidateResourceConfig(const ResourceConfig& r,
                                    const std::string& path) {
  if (!(std::isfinite(r.rate) && r.rate > 0 && r.rate <= kMaxTokens)) {
    return FieldError(Join(path, "rate"), "must be > 0 and <= 1e12");
  }
  if (r.period <= Duration::zero() || r.period > kMaxPeriod) {
    return FieldError(Join(path, "period"), "must be > 0 and <= 8760h");
  }
  const double per_second = r.RatePerSecond();
  if (!(per_second > 0) || !std::isfinite(per_second) ||
      per_second > 1e9 * kMaxTokens) {
    return FieldError(Join(path, "rate"), "rate per period is out of range");
  }
  if (!(std::isfinite(r.burst) && r.burst >= 1 && r.burst <= kMaxTokens)) {
    return FieldError(Join(path, "burst"), "must be >= 1 and <= 1e12");
  }
  if (r.burst / per_second > ToSeconds(kMaxPeriod)) {
    return FieldError(Join(path, "burst"),
                      "refilling the burst takes longer than a year "
                      "(burst / rate * period)");
  }
  if (r.algorithm != "gcra" && r.algorithm != "token_bucket") {
    return FieldError(Join(path, "algorithm"),
                      absl::StrCat("must be gcra or token_bucket (got \"",
                                   absl::CHexEscape(r.algorithm), "\")"));
  }
  return ValidateLease(r.lease, Join(path, "lease"));
}

}  // namespace

double ResourceConfig::RatePerSecond() const {
  const double seconds = ToSeconds(period);
  return seconds > 0 ? rate / seconds : 0;
}

absl::Status ValidateServerConfig(const ServerConfig& config) {
  if (!IsValidListen(config.listen)) {
    return FieldError("listen",
                      "must be host:port with an IP literal host (e.g. "
                      "127.0.0.1:7070, [::]:7070)");
  }
  if (!config.admin_listen.empty() && config.admin_listen != "off" &&
      !IsValidListen(config.admin_listen)) {
    return FieldError("admin_listen",
                      "must be host:port with an IP literal host, \"\" or "
                      "\"off\"");
  }
  std::set<std::string, std::less<>> names;
  for (const ResourceConfig& r : config.resources) {
    if (!config_yaml::IsValidName(r.name)) {
      return FieldError(
          absl::StrCat("resources.", absl::CHexEscape(r.name)),
          "resource names must be 1..64 letters, digits, '_', '-' or '.'");
    }
    const std::string path = absl::StrCat("resources.", r.name);
    if (!names.insert(r.name).second) {
      return FieldError(path, "duplicate resource");
    }
    absl::Status status = ValidateResourceConfig(r, path);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace sluice
