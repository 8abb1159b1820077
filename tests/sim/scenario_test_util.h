// Helpers the scenario tests share: how many violations of one check a run had, and all of them
// in words for a failure message.
#pragma once

#include <cstdint>
#include <string>

#include "faultline/lab/scenario.h"

namespace faultline::lab {

inline int64_t Count(const RunResult& r, const std::string& name) {
  auto it = r.violations.find(name);
  return it == r.violations.end() ? 0 : it->second;
}

// "name=count (first instance) ..." for every violated check.
inline std::string Describe(const RunResult& r) {
  std::string s;
  for (const auto& [name, count] : r.violations) {
    s += name + "=" + std::to_string(count) + " (" + r.violation_details.at(name) + ") ";
  }
  return s;
}

}  // namespace faultline::lab
