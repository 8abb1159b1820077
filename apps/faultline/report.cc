#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "apps/faultline/commands.h"

namespace faultline::app {
namespace {

std::string FormatNumber(double v) {
  char buf[32];
  if (v == static_cast<double>(static_cast<int64_t>(v)) && v < 1e12 && v > -1e12) {
    std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(v));
  } else if (v < 1e6 && v > -1e6) {
    std::snprintf(buf, sizeof(buf), "%.2f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.3g", v);
  }
  return buf;
}

}  // namespace

void PrintTable(const std::vector<lab::VariantSummary>& summaries) {
  std::printf("%-20s %-12s %6s %8s %10s  %-18s %s\n", "scenario", "variant", "seeds", "failing",
              "violations", "verdict", "key metrics (mean over seeds)");
  for (const lab::VariantSummary& s : summaries) {
    const lab::Scenario* scenario = lab::FindScenario(s.scenario);
    std::string metrics;
    if (scenario != nullptr) {
      for (const std::string& name : scenario->key_metrics()) {
        auto it = s.metrics.find(name);
        if (it == s.metrics.end()) continue;
        if (!metrics.empty()) metrics += "  ";
        metrics += name + "=" + FormatNumber(it->second.mean);
      }
    }
    std::printf("%-20s %-12s %6llu %8zu %10lld  %-18s %s\n", s.scenario.c_str(), s.variant.c_str(),
                static_cast<unsigned long long>(s.seeds), s.failing_seeds.size(),
                static_cast<long long>(s.violations), s.verdict.c_str(), metrics.c_str());
  }
  for (const lab::VariantSummary& s : summaries) {
    if (s.violations_by_name.empty()) continue;
    std::string by_name;
    for (const auto& [name, count] : s.violations_by_name) {
      by_name += " " + name + "=" + std::to_string(count);
    }
    std::printf("  %s/%s violations:%s\n", s.scenario.c_str(), s.variant.c_str(), by_name.c_str());
  }
  double sim_s = 0;
  double wall_s = 0;
  uint64_t events = 0;
  for (const lab::VariantSummary& s : summaries) {
    sim_s += s.simulated.seconds_f();
    wall_s += s.wall_seconds;
    events += s.events;
  }
  if (wall_s > 0) {
    std::printf("simulated %.1fs in %.2fs of CPU time (%.0fx real time per core), %.2fM events/s per core\n", sim_s,
                wall_s, sim_s / wall_s, static_cast<double>(events) / wall_s / 1e6);
  }
}

bool CanWrite(const std::string& path, std::string* error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    *error = "cannot write '" + path + "': is a directory";
    return false;
  }
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    *error = "cannot write '" + path + "': directory '" + parent.string() + "' does not exist";
    return false;
  }
  const std::string probe = path + ".tmp";
  {
    std::ofstream out(probe);
    if (!out) {
      *error = "cannot write '" + path + "': permission denied or read-only";
      return false;
    }
  }
  fs::remove(probe, ec);
  return true;
}

bool WriteJson(const std::string& path, const std::vector<lab::VariantSummary>& summaries,
               const LabArgs& args, std::string* error) {
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const lab::VariantSummary& s : summaries) {
    nlohmann::ordered_json metrics = nlohmann::ordered_json::object();
    nlohmann::ordered_json detail = nlohmann::ordered_json::object();
    for (const auto& [name, m] : s.metrics) {
      metrics[name] = m.mean;
      detail[name] = {{"mean", m.mean}, {"min", m.min}, {"p50", m.p50}, {"max", m.max}};
    }
    results.push_back({
        {"scenario", s.scenario},
        {"variant", s.variant},
        {"hardened", s.hardened},
        {"seeds", s.seeds},
        {"violations", s.violations},
        {"violations_by_name", s.violations_by_name},
        {"failing_seeds", s.failing_seeds},
        {"failure_rate_min", s.failure_rate_min},
        {"passed", s.passed},
        {"verdict", s.verdict},
        {"metrics", metrics},
        {"metrics_detail", detail},
        {"events", s.events},
        {"simulated_seconds", s.simulated.seconds_f()},
        {"wall_seconds", s.wall_seconds},
    });
  }
  bool passed = true;
  for (const auto& s : summaries) passed &= s.passed;
  nlohmann::ordered_json doc = {
      {"faultline_version", FAULTLINE_VERSION},
      {"schema", 1},
      {"first_seed", args.seed},
      {"seeds", args.seeds},
      {"passed", passed},
      {"results", results},
  };
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << doc.dump(2) << "\n";
    if (!out) {
      *error = "cannot write '" + path + "'";
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    *error = "cannot write '" + path + "': " + ec.message();
    return false;
  }
  return true;
}

}  // namespace faultline::app
