#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "apps/faultline/commands.h"

namespace faultline::app {

// coverage.cc
nlohmann::ordered_json ProbeCoverageJson(const std::vector<lab::VariantSummary>& summaries);

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
    // The first instance of each name is on the lowest seed that violated it, so the names whose
    // first instance is on the first failing seed are exactly that seed's violations.
    if (s.failing_seeds.empty()) continue;
    const uint64_t seed = s.failing_seeds.front();
    for (const auto& [name, first] : s.first_violations) {
      if (first.seed != seed || first.detail.empty()) continue;
      std::printf("    seed %llu %s: %s\n", static_cast<unsigned long long>(seed), name.c_str(),
                  first.detail.c_str());
    }
  }
}

void PrintTiming(const lab::RunnerReport& report) {
  double sim_s = 0;
  double run_cpu_s = 0;
  uint64_t events = 0;
  for (const lab::VariantSummary& s : report.summaries) {
    sim_s += s.simulated.seconds_f();
    run_cpu_s += s.cpu_seconds;
    events += s.events;
  }
  std::printf("simulated %.1fs in %llu runs", sim_s, static_cast<unsigned long long>(report.runs));
  if (report.reruns > 0) {
    std::printf(" (+%llu determinism reruns)", static_cast<unsigned long long>(report.reruns));
  }
  std::printf(": %.2fs CPU time, %.2fs wall time on %u threads", report.cpu_seconds,
              report.wall_seconds, report.threads);
  if (run_cpu_s > 0) {
    std::printf("; %.0fx real time and %.2fM events per CPU-second", sim_s / run_cpu_s,
                static_cast<double>(events) / run_cpu_s / 1e6);
  }
  std::printf("\n");
}

bool CanWrite(const std::string& path, std::string* error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    *error = "cannot write '" + path + "': " + std::strerror(EISDIR);
    return false;
  }
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    *error = "cannot write '" + path + "': directory '" + parent.string() + "' does not exist";
    return false;
  }
  const std::string probe = path + ".tmp";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "cannot write '" + path + "': " + std::strerror(errno);
    return false;
  }
  ::close(fd);
  fs::remove(probe, ec);
  return true;
}

bool WriteJson(const std::string& path, const lab::RunnerReport& report, uint64_t first_seed,
               uint64_t seeds, std::string* error) {
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const lab::VariantSummary& s : report.summaries) {
    nlohmann::ordered_json metrics = nlohmann::ordered_json::object();
    nlohmann::ordered_json detail = nlohmann::ordered_json::object();
    for (const auto& [name, m] : s.metrics) {
      metrics[name] = m.mean;
      detail[name] = {{"mean", m.mean}, {"min", m.min}, {"p50", m.p50}, {"max", m.max}};
    }
    nlohmann::ordered_json violation_details = nlohmann::ordered_json::object();
    for (const auto& [name, first] : s.first_violations) {
      violation_details[name] = {{"seed", first.seed}, {"detail", first.detail}};
    }
    results.push_back({
        {"scenario", s.scenario},
        {"variant", s.variant},
        {"hardened", s.hardened},
        {"seeds", s.seeds},
        {"violations", s.violations},
        {"violations_by_name", s.violations_by_name},
        {"violation_details", violation_details},
        {"failing_seeds", s.failing_seeds},
        {"failure_rate_min", s.failure_rate_min},
        {"passed", s.passed},
        {"verdict", s.verdict},
        {"reason", s.reason},
        {"metrics", metrics},
        {"metrics_detail", detail},
        {"events", s.events},
        {"simulated_seconds", s.simulated.seconds_f()},
        {"cpu_seconds", s.cpu_seconds},
        {"rerun_cpu_seconds", s.rerun_cpu_seconds},
        {"wall_seconds", s.wall_seconds},
    });
    results.back()["probes"] = s.probes;
    results.back()["buggify_fired"] = s.buggify_fired;
  }
  nlohmann::ordered_json divergences = nlohmann::ordered_json::array();
  for (const lab::Divergence& d : report.divergences) {
    divergences.push_back({{"scenario", d.scenario},
                           {"variant", d.variant},
                           {"seed", d.seed},
                           {"first_divergent_event", d.first_divergent_event}});
  }
  nlohmann::ordered_json doc = {
      {"faultline_version", FAULTLINE_VERSION},
      {"schema", 1},
      {"first_seed", first_seed},
      {"seeds", seeds},
      {"passed", report.ok()},
      {"runs", report.runs},
      {"reruns", report.reruns},
      {"cpu_seconds", report.cpu_seconds},
      {"wall_seconds", report.wall_seconds},
      {"threads", report.threads},
      {"divergences", divergences},
      {"results", results},
  };
  doc["probe_coverage"] = ProbeCoverageJson(report.summaries);
  return WriteFileAtomically(path, doc.dump(2) + "\n", error);
}

bool WriteFileAtomically(const std::string& path, const std::string& content, std::string* error) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << content;
    out.flush();
    if (!out) {
      *error = "cannot write '" + path + "': " + std::strerror(errno);
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
