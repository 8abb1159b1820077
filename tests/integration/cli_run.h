// Running the real `faultline` binary from a test: its exit code and what it printed, and the
// misuse contract every subcommand keeps (exit 2, exactly one line "faultline: error: ..." on
// stderr, nothing on stdout). The including test target defines FAULTLINE_BIN.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "faultline/adapters/open_store.h"
#include "tests/integration/idempotency_real_util.h"

#ifndef FAULTLINE_BIN
#error "FAULTLINE_BIN must name the faultline binary"
#endif

extern char** environ;

namespace faultline::testing {

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs FAULTLINE_BIN with `args`, stdout and stderr captured through files.
inline CliRun Faultline(const std::vector<std::string>& args) {
  TempDir dir;
  const std::string out = dir.path() + "/out", err = dir.path() + "/err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> storage = {FAULTLINE_BIN};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  CliRun run;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  posix_spawn_file_actions_destroy(&actions);
  run.out = ReadWholeFile(out);
  run.err = ReadWholeFile(err);
  return run;
}

// Command-line misuse: exit 2, one "faultline: error: ..." line on stderr, nothing on stdout.
inline void ExpectMisuse(const std::vector<std::string>& args) {
  const CliRun run = Faultline(args);
  std::string shown;
  for (const std::string& a : args) shown += a + " ";
  EXPECT_EQ(run.exit_code, 2) << shown << "\n" << run.err;
  EXPECT_EQ(run.err.rfind("faultline: error: ", 0), 0u) << shown << ": " << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << shown << ": " << run.err;
  EXPECT_EQ(run.out, "") << shown;
}

// A benchmark command must leave `table` of the store at `uri` empty.
inline void ExpectTableEmpty(const std::string& uri, const std::string& table) {
  OpenStoreOptions options;
  options.table = table;
  Result<std::unique_ptr<LocalStore>> store = OpenStore(uri, options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Result<std::map<std::string, std::string>> dump = DumpStore(**store);
  ASSERT_TRUE(dump.ok()) << dump.status().ToString();
  EXPECT_EQ(dump->size(), 0u) << "the bench left rows behind";
}

}  // namespace faultline::testing
