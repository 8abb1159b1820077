// Coverage probes in the lab's output: per scenario, which registered probes its seeds reached
// and which they never did (core/buggify.h).
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "apps/faultline/commands.h"
#include "faultline/core/buggify.h"

namespace faultline::app {
namespace {

// Probe hits per scenario (over its variants), in the order the scenarios first appear.
std::vector<std::pair<std::string, std::map<std::string, int64_t>>> HitsByScenario(
    const std::vector<lab::VariantSummary>& summaries) {
  std::vector<std::pair<std::string, std::map<std::string, int64_t>>> out;
  for (const lab::VariantSummary& s : summaries) {
    if (out.empty() || out.back().first != s.scenario) out.push_back({s.scenario, {}});
    for (const auto& [name, count] : s.probes) out.back().second[name] += count;
  }
  return out;
}

// The registered probes `scenario` can reach (Scenario::probe_modules), in registration order.
std::vector<std::string> ProbesFor(const std::string& scenario, const std::vector<std::string>& all) {
  const lab::Scenario* s = lab::FindScenario(scenario);
  const std::vector<std::string> modules = s != nullptr ? s->probe_modules() : std::vector<std::string>{};
  if (modules.empty()) return all;
  std::vector<std::string> out;
  for (const std::string& p : all) {
    const std::string module = p.substr(0, p.find('.'));
    for (const std::string& m : modules) {
      if (m == module) out.push_back(p);
    }
  }
  return out;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "-" : out;
}

}  // namespace

void PrintProbeCoverage(const std::vector<lab::VariantSummary>& summaries) {
  const std::vector<std::string> probes = ProbeNames();
  if (probes.empty()) return;
  std::set<std::string> hit_anywhere;
  std::set<std::string> reachable_anywhere;
  for (const auto& [scenario, hits] : HitsByScenario(summaries)) {
    const std::vector<std::string> reachable = ProbesFor(scenario, probes);
    std::vector<std::string> hit;
    std::vector<std::string> never;
    for (const std::string& p : reachable) {
      reachable_anywhere.insert(p);
      auto it = hits.find(p);
      if (it != hits.end() && it->second > 0) {
        hit.push_back(p + " x" + std::to_string(it->second));
        hit_anywhere.insert(p);
      } else {
        never.push_back(p);
      }
    }
    std::printf("probes %s: %zu/%zu hit: %s; never hit: %s\n", scenario.c_str(), hit.size(),
                reachable.size(), Join(hit).c_str(), Join(never).c_str());
  }
  std::vector<std::string> never;
  for (const std::string& p : probes) {
    if (reachable_anywhere.count(p) > 0 && hit_anywhere.count(p) == 0) never.push_back(p);
  }
  std::printf("probes, scenarios run: %zu/%zu hit; never hit: %s\n", hit_anywhere.size(),
              reachable_anywhere.size(), Join(never).c_str());
}

nlohmann::ordered_json ProbeCoverageJson(const std::vector<lab::VariantSummary>& summaries) {
  const std::vector<std::string> probes = ProbeNames();
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [scenario, hits] : HitsByScenario(summaries)) {
    const std::vector<std::string> reachable = ProbesFor(scenario, probes);
    nlohmann::ordered_json hit = nlohmann::ordered_json::object();
    nlohmann::ordered_json never = nlohmann::ordered_json::array();
    for (const std::string& p : reachable) {
      auto it = hits.find(p);
      if (it != hits.end() && it->second > 0) {
        hit[p] = it->second;
      } else {
        never.push_back(p);
      }
    }
    out[scenario] = {{"probes", reachable.size()}, {"hit", hit}, {"never_hit", never}};
  }
  return out;
}

}  // namespace faultline::app
