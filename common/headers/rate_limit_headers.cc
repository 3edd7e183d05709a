#include "common/headers/rate_limit_headers.h"

#include <algorithm>
#include <array>
#include <functional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "common/headers/rate_limit_values.h"
#include "common/headers/structured_field.h"
#include "common/time/duration.h"

namespace sluice {
namespace {

using header_value::CappedDelay;
using header_value::ParseCount;
using header_value::ParseDeltaSeconds;
using header_value::ParseGoDuration;
using header_value::ParseResetNumber;
using header_value::ParseRetryAfter;
using header_value::ParseRetryAfterMs;
using header_value::ParseRfc3339Delay;
using header_value::TrimOws;

// Every field the parser reads. The OpenAI and Anthropic families are laid
// out as [kind][limit, remaining, reset].
enum Field : int {
  kRetryAfter,
  kRetryAfterMs,
  kDate,
  kXShouldRetry,
  kStripeShouldRetry,
  kXrlLimit,
  kXrlRemaining,
  kXrlUsed,
  kXrlReset,
  kXrlResetAfter,
  kTwitterLimit,
  kTwitterRemaining,
  kTwitterReset,
  kOpenAiFirst,                            // 2 kinds x 3
  kAnthropicFirst = kOpenAiFirst + 2 * 3,  // 4 kinds x 3
  kRateLimit = kAnthropicFirst + 4 * 3,
  kRateLimitPolicy,
  kRlLimit,
  kRlRemaining,
  kRlReset,
  kShopify,
  kFieldCount,
};
enum Part : int { kLimit = 0, kRemaining = 1, kReset = 2 };

constexpr std::array<std::string_view, 2> kOpenAiKinds = {"requests", "tokens"};
constexpr std::array<std::string_view, 4> kAnthropicKinds = {
    "requests", "tokens", "input-tokens", "output-tokens"};
constexpr std::array<std::string_view, 3> kPartNames = {"limit", "remaining",
                                                        "reset"};
constexpr size_t kMaxNameLength = 64;
constexpr double kMaxWindowSeconds = 400 * 24 * 3600;

using FieldTable = absl::flat_hash_map<std::string, int>;

const FieldTable& Fields() {
  static const FieldTable* const table = [] {
    auto* t = new FieldTable{
        {"retry-after", kRetryAfter},
        {"retry-after-ms", kRetryAfterMs},
        {"date", kDate},
        {"x-should-retry", kXShouldRetry},
        {"stripe-should-retry", kStripeShouldRetry},
        {"x-ratelimit-limit", kXrlLimit},
        {"x-ratelimit-remaining", kXrlRemaining},
        {"x-ratelimit-used", kXrlUsed},
        {"x-ratelimit-reset", kXrlReset},
        {"x-ratelimit-reset-after", kXrlResetAfter},
        {"x-rate-limit-limit", kTwitterLimit},
        {"x-rate-limit-remaining", kTwitterRemaining},
        {"x-rate-limit-reset", kTwitterReset},
        {"ratelimit", kRateLimit},
        {"ratelimit-policy", kRateLimitPolicy},
        {"ratelimit-limit", kRlLimit},
        {"ratelimit-remaining", kRlRemaining},
        {"ratelimit-reset", kRlReset},
        {"x-shopify-shop-api-call-limit", kShopify},
    };
    for (size_t k = 0; k < kOpenAiKinds.size(); ++k) {
      for (size_t p = 0; p < kPartNames.size(); ++p) {
        t->emplace(std::string("x-ratelimit-") + std::string(kPartNames[p]) +
                       "-" + std::string(kOpenAiKinds[k]),
                   kOpenAiFirst + 3 * k + p);
      }
    }
    for (size_t k = 0; k < kAnthropicKinds.size(); ++k) {
      for (size_t p = 0; p < kPartNames.size(); ++p) {
        t->emplace(std::string("anthropic-ratelimit-") +
                       std::string(kAnthropicKinds[k]) + "-" +
                       std::string(kPartNames[p]),
                   kAnthropicFirst + 3 * k + p);
      }
    }
    return t;
  }();
  return *table;
}

using Values = std::vector<std::string_view>;
using FieldValues = std::array<Values, kFieldCount>;

// Calls `use(piece)` for each occurrence of a field; when an occurrence is
// not usable as a whole and holds commas (lines joined by an intermediary),
// calls it for each comma-separated piece instead.
template <typename Use>
void ForEachPiece(const Values& values, Use use) {
  for (std::string_view v : values) {
    if (use(v) || v.find(',') == std::string_view::npos) continue;
    while (true) {
      const size_t comma = v.find(',');
      use(v.substr(0, comma));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
}

// The usable value of a repeated field that `better` prefers.
template <typename T, typename Parse, typename Better>
std::optional<T> Pick(const Values& values, Parse parse, Better better) {
  std::optional<T> best;
  ForEachPiece(values, [&](std::string_view piece) {
    std::optional<T> v = parse(piece);
    if (!v) return false;
    if (!best || better(*v, *best)) best = v;
    return true;
  });
  return best;
}

std::optional<double> LowestCount(const Values& values) {
  return Pick<double>(values, ParseCount, std::less<double>());
}
template <typename Parse>
std::optional<Duration> LongestDelay(const Values& values, Parse parse) {
  return Pick<Duration>(values, parse, std::greater<Duration>());
}

// One quota as a single dialect reports it.
struct Quota {
  std::optional<double> remaining;
  std::optional<double> limit;
  std::optional<Duration> reset_after;
  std::optional<Duration> window;
  std::string_view source;
};

// Whether quota `a` constrains more than `b`; both have `remaining`.
bool MoreConstraining(const Quota& a, const Quota& b) {
  const bool a_out = *a.remaining <= 0;
  const bool b_out = *b.remaining <= 0;
  if (a_out != b_out) return a_out;
  if (!a_out) {
    if (a.limit && b.limit && *a.limit > 0 && *b.limit > 0) {
      const double ra = *a.remaining / *a.limit;
      const double rb = *b.remaining / *b.limit;
      if (ra != rb) return ra < rb;
    } else if (*a.remaining != *b.remaining) {
      return *a.remaining < *b.remaining;
    }
  }
  // Equally constrained (or both exhausted): the longer wait wins.
  return a.reset_after.value_or(Duration::zero()) >
         b.reset_after.value_or(Duration::zero());
}

class Collector {
 public:
  Collector(const FieldValues& v, absl::Time ref, ResetStyle style)
      : v_(v), ref_(ref), style_(style) {}

  std::vector<Quota> Collect() {
    XRateLimit();
    Twitter();
    OpenAi();
    Anthropic();
    Ietf();
    IetfDraft();
    Shopify();
    return std::move(quotas_);
  }

 private:
  void Add(Quota q) {
    if (q.remaining || q.reset_after) quotas_.push_back(q);
  }
  std::optional<Duration> BareReset(int field) const {
    return LongestDelay(v_[field], [this](std::string_view s) {
      return ParseResetNumber(s, style_, ref_);
    });
  }

  // GitHub, Discord (and many others).
  void XRateLimit() {
    Quota q;
    q.source = "x-ratelimit";
    q.limit = LowestCount(v_[kXrlLimit]);
    q.remaining = LowestCount(v_[kXrlRemaining]);
    if (!q.remaining && q.limit) {
      std::optional<double> used =
          Pick<double>(v_[kXrlUsed], ParseCount, std::greater<double>());
      if (used) q.remaining = std::max(0.0, *q.limit - *used);
    }
    q.reset_after = LongestDelay(v_[kXrlResetAfter], ParseDeltaSeconds);
    if (q.reset_after) {
      q.source = "discord";
    } else {
      q.reset_after = BareReset(kXrlReset);
    }
    Add(q);
  }

  void Twitter() {
    Quota q;
    q.source = "x-rate-limit";
    q.limit = LowestCount(v_[kTwitterLimit]);
    q.remaining = LowestCount(v_[kTwitterRemaining]);
    q.reset_after = BareReset(kTwitterReset);
    Add(q);
  }

  void OpenAi() {
    for (size_t k = 0; k < kOpenAiKinds.size(); ++k) {
      const int base = kOpenAiFirst + 3 * k;
      Quota q;
      q.source = "openai";
      q.limit = LowestCount(v_[base + kLimit]);
      q.remaining = LowestCount(v_[base + kRemaining]);
      q.reset_after = LongestDelay(v_[base + kReset], ParseGoDuration);
      Add(q);
    }
  }

  void Anthropic() {
    for (size_t k = 0; k < kAnthropicKinds.size(); ++k) {
      const int base = kAnthropicFirst + 3 * k;
      Quota q;
      q.source = "anthropic";
      q.limit = LowestCount(v_[base + kLimit]);
      q.remaining = LowestCount(v_[base + kRemaining]);
      q.reset_after = LongestDelay(
          v_[base + kReset],
          [this](std::string_view s) { return ParseRfc3339Delay(s, ref_); });
      Add(q);
    }
  }

  // draft-ietf-httpapi-ratelimit-headers-11: `RateLimit` items name a
  // policy of `RateLimit-Policy` and carry r (remaining) and t (seconds to
  // reset); the policy carries q (quota) and w (window).
  void Ietf() {
    std::optional<sf::List> items = ParseJoinedList(v_[kRateLimit]);
    if (!items) return;
    std::optional<sf::List> policies = ParseJoinedList(v_[kRateLimitPolicy]);
    for (const sf::ListMember& member : *items) {
      const sf::Item* item = std::get_if<sf::Item>(&member);
      if (item == nullptr) continue;
      std::optional<std::string_view> name = sf::AsStringOrToken(item->value);
      if (!name) continue;
      Quota q;
      q.source = "ietf";
      q.remaining = NonNegativeParam(item->params, "r");
      if (std::optional<double> t = NonNegativeParam(item->params, "t")) {
        q.reset_after = CappedDelay(*t);
      }
      if (const sf::Item* policy = FindPolicy(policies, *name)) {
        q.limit = NonNegativeParam(policy->params, "q");
        if (std::optional<double> w = NonNegativeParam(policy->params, "w")) {
          q.window = FromSeconds(std::min(*w, kMaxWindowSeconds));
        }
      }
      Add(q);
    }
  }

  // Older drafts: RateLimit-Limit / -Remaining / -Reset, or one
  // `RateLimit: limit=100, remaining=50, reset=30` dictionary.
  void IetfDraft() {
    Quota q;
    q.source = "ietf-draft";
    q.limit = LowestCount(v_[kRlLimit]);
    q.remaining = LowestCount(v_[kRlRemaining]);
    q.reset_after = BareReset(kRlReset);
    // A draft-11 list never parses as a dictionary (its members start with
    // a string), so this reads only the older form.
    std::optional<sf::Dictionary> dict;
    if (!v_[kRateLimit].empty()) {
      dict = sf::ParseDictionary(Joined(v_[kRateLimit]));
    }
    if (dict) {
      for (const auto& [key, member] : *dict) {
        const sf::Item* item = std::get_if<sf::Item>(&member);
        if (item == nullptr) continue;
        std::optional<double> n = sf::AsNumber(item->value);
        if (!n || *n < 0) continue;
        if (key == "limit" && !q.limit) q.limit = n;
        if (key == "remaining" && !q.remaining) q.remaining = n;
        if (key == "reset" && !q.reset_after) q.reset_after = CappedDelay(*n);
      }
    }
    // The window of the policy whose quota matches the limit:
    // `RateLimit-Limit: 100, 100;w=60` or `RateLimit-Policy: 100;w=60`.
    if (q.limit) {
      for (int field : {kRlLimit, kRateLimitPolicy}) {
        std::optional<sf::List> list = ParseJoinedList(v_[field]);
        if (!list || q.window) continue;
        for (const sf::ListMember& member : *list) {
          const sf::Item* item = std::get_if<sf::Item>(&member);
          if (item == nullptr || sf::AsNumber(item->value) != q.limit) continue;
          if (std::optional<double> w = NonNegativeParam(item->params, "w")) {
            q.window = FromSeconds(std::min(*w, kMaxWindowSeconds));
            break;
          }
        }
      }
    }
    Add(q);
  }

  // X-Shopify-Shop-Api-Call-Limit: "used/capacity".
  void Shopify() {
    Quota q;
    q.source = "shopify";
    ForEachPiece(v_[kShopify], [&q](std::string_view s) {
      const size_t slash = s.find('/');
      if (slash == std::string_view::npos) return false;
      std::optional<double> used = ParseCount(s.substr(0, slash));
      std::optional<double> capacity = ParseCount(s.substr(slash + 1));
      if (!used || !capacity || *capacity <= 0) return false;
      const double remaining = std::max(0.0, *capacity - *used);
      if (!q.remaining || remaining < *q.remaining) {
        q.remaining = remaining;
        q.limit = capacity;
      }
      return true;
    });
    Add(q);
  }

  static std::string Joined(const Values& values) {
    std::string out;
    for (std::string_view v : values) {
      if (!out.empty()) out += ", ";
      out += TrimOws(v);
      if (out.size() > sf::kMaxFieldBytes) break;  // will fail to parse
    }
    return out;
  }
  static std::optional<sf::List> ParseJoinedList(const Values& values) {
    if (values.empty()) return std::nullopt;
    return sf::ParseList(Joined(values));
  }
  static std::optional<double> NonNegativeParam(const sf::Parameters& params,
                                                std::string_view key) {
    const sf::BareItem* value = sf::FindParam(params, key);
    if (value == nullptr) return std::nullopt;
    std::optional<double> n = sf::AsNumber(*value);
    if (!n || *n < 0) return std::nullopt;
    return n;
  }
  static const sf::Item* FindPolicy(const std::optional<sf::List>& policies,
                                    std::string_view name) {
    if (!policies) return nullptr;
    for (const sf::ListMember& member : *policies) {
      const sf::Item* item = std::get_if<sf::Item>(&member);
      if (item != nullptr && sf::AsStringOrToken(item->value) == name) {
        return item;
      }
    }
    return nullptr;
  }

  const FieldValues& v_;
  const absl::Time ref_;
  const ResetStyle style_;
  std::vector<Quota> quotas_;
};

}  // namespace

RateLimitHint ParseRateLimitHeaders(std::span<const HeaderRef> headers,
                                    absl::Time now,
                                    const RateLimitParseOptions& options) {
  FieldValues values;
  const FieldTable& fields = Fields();
  char lower[kMaxNameLength];
  for (const HeaderRef& h : headers) {
    const std::string_view name = TrimOws(h.name);
    if (name.empty() || name.size() > kMaxNameLength) continue;
    for (size_t i = 0; i < name.size(); ++i) {
      lower[i] = absl::ascii_tolower(static_cast<unsigned char>(name[i]));
    }
    auto it = fields.find(absl::string_view(lower, name.size()));
    if (it != fields.end()) values[it->second].push_back(h.value);
  }

  absl::Time ref = now;
  for (std::string_view date : values[kDate]) {
    if (std::optional<absl::Time> t = ParseHttpDate(date)) {
      ref = *t;
      break;
    }
  }

  RateLimitHint hint;
  hint.retry_after = LongestDelay(values[kRetryAfterMs], ParseRetryAfterMs);
  if (!hint.retry_after) {
    hint.retry_after = LongestDelay(
        values[kRetryAfter],
        [ref](std::string_view s) { return ParseRetryAfter(s, ref); });
  }
  for (int field : {kXShouldRetry, kStripeShouldRetry}) {
    ForEachPiece(values[field], [&hint](std::string_view s) {
      s = TrimOws(s);
      const absl::string_view a(s.data(), s.size());
      if (absl::EqualsIgnoreCase(a, "false")) hint.should_retry_false = true;
      return absl::EqualsIgnoreCase(a, "false") ||
             absl::EqualsIgnoreCase(a, "true");
    });
  }

  const std::vector<Quota> quotas =
      Collector(values, ref, options.reset_style).Collect();
  const Quota* chosen = nullptr;
  for (const Quota& q : quotas) {
    if (q.remaining && (chosen == nullptr || MoreConstraining(q, *chosen))) {
      chosen = &q;
    }
  }
  if (chosen == nullptr && !quotas.empty()) chosen = &quotas.front();
  if (chosen != nullptr) {
    hint.remaining = chosen->remaining;
    hint.limit = chosen->limit;
    hint.reset_after = chosen->reset_after;
    hint.window = chosen->window;
    hint.source = std::string(chosen->source);
  }
  return hint;
}

std::optional<Duration> SuggestedPause(const RateLimitHint& hint) {
  if (hint.retry_after) return hint.retry_after;
  if (hint.remaining && *hint.remaining <= 0 && hint.reset_after) {
    return hint.reset_after;
  }
  return std::nullopt;
}

}  // namespace sluice
