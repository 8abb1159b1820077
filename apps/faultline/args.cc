// Argument helpers shared by the commands: strict numbers, scenario selection, thread counts.
#include <algorithm>
#include <string>
#include <thread>

#include "apps/faultline/commands.h"

namespace faultline::app {

uint64_t ParseUnsigned(std::string_view option, std::string_view text, uint64_t min, uint64_t max) {
  const std::string range = " (expected " + std::to_string(min) + ".." + std::to_string(max) + ")";
  const std::string quoted = std::string(option) + ": '" + std::string(text) + "'";
  std::string_view digits = text;
  const bool negative = !digits.empty() && digits.front() == '-';
  if (negative) digits.remove_prefix(1);
  bool all_digits = !digits.empty();
  for (char c : digits) all_digits &= c >= '0' && c <= '9';
  if (!all_digits) throw UsageError(quoted + " is not a number" + range);
  bool overflow = false;
  uint64_t value = 0;
  for (char c : digits) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - d) / 10) {
      overflow = true;
      break;
    }
    value = value * 10 + d;
  }
  if (overflow || negative || value < min || value > max) {
    throw UsageError(quoted + " is out of range" + range);
  }
  return value;
}

std::vector<const lab::Scenario*> SelectScenarios(const std::vector<std::string>& ids) {
  if (ids.empty()) return lab::AllScenarios();
  std::vector<const lab::Scenario*> scenarios;
  for (const std::string& id : ids) {
    const lab::Scenario* s = lab::FindScenario(id);
    if (s == nullptr) throw UsageError("unknown scenario '" + id + "' (see faultline lab --list)");
    if (std::find(scenarios.begin(), scenarios.end(), s) == scenarios.end()) scenarios.push_back(s);
  }
  return scenarios;
}

unsigned ThreadsFor(uint64_t jobs) {
  if (jobs != 0) return static_cast<unsigned>(jobs);
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace faultline::app
