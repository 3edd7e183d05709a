#include "proxy/http/router.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace sluice {
namespace {

RouteConfig Route(std::string host, std::string limit,
                  std::string path_prefix = "",
                  std::vector<std::string> methods = {},
                  RouteScheme scheme = RouteScheme::kAny) {
  RouteConfig route;
  route.host = std::move(host);
  route.limit = std::move(limit);
  route.path_prefix = std::move(path_prefix);
  route.methods = std::move(methods);
  route.scheme = scheme;
  return route;
}

// The limit name of the matching route, or "<none>".
std::string Limit(const Router& router, std::string_view host,
                  std::string_view path = "/", std::string_view method = "GET",
                  RouteScheme scheme = RouteScheme::kHttp) {
  std::optional<Router::Match> match = router.Find(host, path, method, scheme);
  return match ? match->route->limit : "<none>";
}

TEST(RouterTest, EmptyRouterMatchesNothing) {
  Router router({});
  EXPECT_EQ(router.size(), 0u);
  EXPECT_FALSE(
      router.Find("a.com", "/", "GET", RouteScheme::kHttp).has_value());
}

TEST(RouterTest, ExactHost) {
  Router router({Route("api.example.com", "exact")});
  EXPECT_EQ(Limit(router, "api.example.com"), "exact");
  EXPECT_EQ(Limit(router, "example.com"), "<none>");
  EXPECT_EQ(Limit(router, "x.api.example.com"), "<none>");
  EXPECT_EQ(Limit(router, "api.example.co"), "<none>");
  EXPECT_EQ(Limit(router, "api.example.com.evil"), "<none>");
  EXPECT_EQ(Limit(router, ""), "<none>");
}

TEST(RouterTest, HostIsCaseInsensitiveBothWays) {
  Router router({Route("API.Example.com", "r")});
  EXPECT_EQ(Limit(router, "api.example.com"), "r");
  EXPECT_EQ(Limit(router, "API.EXAMPLE.COM"), "r");
  EXPECT_EQ(Limit(router, "aPi.ExAmPlE.cOm"), "r");
}

TEST(RouterTest, TrailingDotIsIgnoredOnEitherSide) {
  Router router(
      {Route("a.example.com.", "dotted"), Route("b.example.com", "plain")});
  EXPECT_EQ(Limit(router, "a.example.com"), "dotted");
  EXPECT_EQ(Limit(router, "a.example.com."), "dotted");
  EXPECT_EQ(Limit(router, "b.example.com."), "plain");
  EXPECT_EQ(Limit(router, "b.example.com"), "plain");
  // Only one dot is a valid spelling of the root.
  EXPECT_EQ(Limit(router, "b.example.com.."), "<none>");
}

TEST(RouterTest, WildcardMatchesAnyDepthButNotTheApex) {
  Router router({Route("*.example.com", "wild")});
  EXPECT_EQ(Limit(router, "a.example.com"), "wild");
  EXPECT_EQ(Limit(router, "a.b.c.example.com"), "wild");
  EXPECT_EQ(Limit(router, "A.EXAMPLE.COM."), "wild");
  EXPECT_EQ(Limit(router, "example.com"), "<none>");
  EXPECT_EQ(Limit(router, "example.com."), "<none>");
  EXPECT_EQ(Limit(router, ".example.com"), "<none>");
  EXPECT_EQ(Limit(router, "notexample.com"), "<none>");
  EXPECT_EQ(Limit(router, "a.example.com.evil.net"), "<none>");
  EXPECT_EQ(Limit(router, "example.org"), "<none>");
}

TEST(RouterTest, WildcardAndApexNeedTwoRoutes) {
  Router router({Route("*.example.com", "sub"), Route("example.com", "apex")});
  EXPECT_EQ(Limit(router, "www.example.com"), "sub");
  EXPECT_EQ(Limit(router, "example.com"), "apex");
}

TEST(RouterTest, AnyHost) {
  Router router({Route("", "empty"), Route("*", "star")});
  EXPECT_EQ(Limit(router, "whatever.net"), "empty");
  EXPECT_EQ(Limit(router, ""), "empty");
  Router star({Route("*", "star")});
  EXPECT_EQ(Limit(star, "whatever.net"), "star");
  EXPECT_EQ(Limit(star, "10.0.0.1"), "star");
}

TEST(RouterTest, IpLiterals) {
  Router router({Route("10.1.2.3", "v4"), Route("[2001:db8::1]", "v6"),
                 Route("2001:db8::2", "v6-bare")});
  EXPECT_EQ(Limit(router, "10.1.2.3"), "v4");
  EXPECT_EQ(Limit(router, "[2001:db8::1]"), "v6");
  EXPECT_EQ(Limit(router, "2001:DB8::1"), "v6");
  EXPECT_EQ(Limit(router, "[2001:db8::2]"), "v6-bare");
  EXPECT_EQ(Limit(router, "10.1.2.4"), "<none>");
}

TEST(RouterTest, PathPrefixIsAPlainCaseSensitivePrefix) {
  Router router({Route("a.com", "v1", "/v1/")});
  EXPECT_EQ(Limit(router, "a.com", "/v1/"), "v1");
  EXPECT_EQ(Limit(router, "a.com", "/v1/chat/completions"), "v1");
  EXPECT_EQ(Limit(router, "a.com", "/v1"), "<none>");
  EXPECT_EQ(Limit(router, "a.com", "/V1/chat"), "<none>");
  EXPECT_EQ(Limit(router, "a.com", "/v2/chat"), "<none>");
  EXPECT_EQ(Limit(router, "a.com", ""), "<none>");
  // Plain prefix: no segment boundary is implied.
  Router no_slash({Route("a.com", "v1", "/v1")});
  EXPECT_EQ(Limit(no_slash, "a.com", "/v1beta/x"), "v1");
}

TEST(RouterTest, MethodsAreCaseInsensitive) {
  Router router({Route("a.com", "writes", "", {"POST", "put"})});
  EXPECT_EQ(Limit(router, "a.com", "/", "POST"), "writes");
  EXPECT_EQ(Limit(router, "a.com", "/", "post"), "writes");
  EXPECT_EQ(Limit(router, "a.com", "/", "PUT"), "writes");
  EXPECT_EQ(Limit(router, "a.com", "/", "GET"), "<none>");
  EXPECT_EQ(Limit(router, "a.com", "/", "POSTX"), "<none>");
  EXPECT_EQ(Limit(router, "a.com", "/", ""), "<none>");
}

TEST(RouterTest, AllConditionsMustHold) {
  Router router({Route("a.com", "all", "/v1/", {"POST"})});
  EXPECT_EQ(Limit(router, "a.com", "/v1/x", "POST"), "all");
  EXPECT_EQ(Limit(router, "b.com", "/v1/x", "POST"), "<none>");
  EXPECT_EQ(Limit(router, "a.com", "/v2/x", "POST"), "<none>");
  EXPECT_EQ(Limit(router, "a.com", "/v1/x", "GET"), "<none>");
}

TEST(RouterTest, SchemeSelectsRoutesThatNameOne) {
  Router router({Route("a.com", "https-only", "", {}, RouteScheme::kHttps),
                 Route("a.com", "http-only", "", {}, RouteScheme::kHttp),
                 Route("b.com", "any", "", {}, RouteScheme::kAny)});
  const RouteScheme kHttp = RouteScheme::kHttp;
  const RouteScheme kHttps = RouteScheme::kHttps;
  EXPECT_EQ(Limit(router, "a.com", "/", "GET", kHttps), "https-only");
  EXPECT_EQ(Limit(router, "a.com", "/", "GET", kHttp), "http-only");
  EXPECT_EQ(Limit(router, "b.com", "/", "GET", kHttps), "any");
  EXPECT_EQ(Limit(router, "b.com", "/", "GET", kHttp), "any");

  // A scheme is one more condition: the other conditions still hold.
  Router https_only({Route("a.com", "s", "/v1/", {"POST"}, kHttps)});
  EXPECT_EQ(Limit(https_only, "a.com", "/v1/x", "POST", kHttps), "s");
  EXPECT_EQ(Limit(https_only, "a.com", "/v1/x", "POST", kHttp), "<none>");
  EXPECT_EQ(Limit(https_only, "b.com", "/v1/x", "POST", kHttps), "<none>");
  EXPECT_EQ(Limit(https_only, "a.com", "/v2/x", "POST", kHttps), "<none>");
  EXPECT_EQ(Limit(https_only, "a.com", "/v1/x", "GET", kHttps), "<none>");

  // kAny is no request's scheme: only routes without one match it.
  EXPECT_EQ(Limit(router, "a.com", "/", "GET", RouteScheme::kAny), "<none>");
  EXPECT_EQ(Limit(router, "b.com", "/", "GET", RouteScheme::kAny), "any");
}

TEST(RouterTest, SchemeRoutesKeepTheirIndexInOrder) {
  // A request of the other scheme skips a route and takes the next one;
  // Match::index is still the position in the configured list.
  Router router({Route("*", "https", "", {}, RouteScheme::kHttps),
                 Route("*", "fallback")});
  std::optional<Router::Match> plain =
      router.Find("a.com", "/", "GET", RouteScheme::kHttp);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->index, 1u);
  std::optional<Router::Match> tls =
      router.Find("a.com", "/", "GET", RouteScheme::kHttps);
  ASSERT_TRUE(tls.has_value());
  EXPECT_EQ(tls->index, 0u);
}

TEST(RouterTest, FirstMatchWinsInOrder) {
  Router router({Route("api.openai.com", "", "/v1/models"),
                 Route("api.openai.com", "openai", "/v1/", {"POST"}),
                 Route("*.openai.com", "wild"), Route("*", "catch-all")});
  std::optional<Router::Match> exempt = router.Find(
      "api.openai.com", "/v1/models/gpt", "POST", RouteScheme::kHttp);
  ASSERT_TRUE(exempt.has_value());
  EXPECT_EQ(exempt->index, 0u);
  EXPECT_EQ(exempt->route->limit, "");

  std::optional<Router::Match> post =
      router.Find("api.openai.com", "/v1/chat", "POST", RouteScheme::kHttp);
  ASSERT_TRUE(post.has_value());
  EXPECT_EQ(post->index, 1u);
  EXPECT_EQ(post->route->limit, "openai");

  std::optional<Router::Match> get =
      router.Find("api.openai.com", "/v1/chat", "GET", RouteScheme::kHttp);
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->index, 2u);

  std::optional<Router::Match> other =
      router.Find("x.org", "/", "GET", RouteScheme::kHttp);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->index, 3u);
  EXPECT_EQ(other->route->limit, "catch-all");

  // Reordering changes the winner.
  Router reversed({Route("*", "catch-all"), Route("api.openai.com", "openai")});
  EXPECT_EQ(Limit(reversed, "api.openai.com"), "catch-all");
}

TEST(RouterTest, KeepsItsOwnCopyOfTheRoutes) {
  std::vector<RouteConfig> routes = {Route("a.com", "first")};
  Router router(routes);
  routes[0].limit = "changed";
  routes.clear();
  std::optional<Router::Match> match =
      router.Find("a.com", "/", "GET", RouteScheme::kHttp);
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->route->limit, "first");
  EXPECT_EQ(match->route->host, "a.com");

  // The route pointer survives moving the router.
  Router moved = std::move(router);
  std::optional<Router::Match> again =
      moved.Find("a.com", "/", "GET", RouteScheme::kHttp);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->route, match->route);
}

TEST(RouteLabelTest, HostPatternThenPathPrefix) {
  RouteConfig r;
  r.host = "api.openai.com";
  r.path_prefix = "/v1";
  EXPECT_EQ(RouteLabel(r), "api.openai.com/v1");
  r.path_prefix.clear();
  EXPECT_EQ(RouteLabel(r), "api.openai.com");
  r.host = "*.example.com";
  EXPECT_EQ(RouteLabel(r), "*.example.com");
  r.host.clear();
  EXPECT_EQ(RouteLabel(r), "*");
  r.path_prefix = "/health";
  EXPECT_EQ(RouteLabel(r), "*/health");
  r.methods = {"GET"};  // methods and limit do not show in the label
  r.limit = "x";
  EXPECT_EQ(RouteLabel(r), "*/health");
}

}  // namespace
}  // namespace sluice
