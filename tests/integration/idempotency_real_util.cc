#include "tests/integration/idempotency_real_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "faultline/adapters/open_store.h"
#include "tests/integration/pg_test_server.h"

#ifndef FAULTLINE_IDEMPOTENCY_WORKER
#error "FAULTLINE_IDEMPOTENCY_WORKER must name the idempotency_worker binary"
#endif

extern char** environ;

namespace faultline::testing {

std::string PgUri(std::string_view conninfo) {
  if (conninfo.substr(0, 13) == "postgresql://" || conninfo.substr(0, 11) == "postgres://") {
    return std::string(conninfo);
  }
  std::map<std::string, std::string> kv;
  size_t pos = 0;
  while (pos < conninfo.size()) {
    const size_t space = conninfo.find(' ', pos);
    const std::string_view item =
        conninfo.substr(pos, space == std::string_view::npos ? std::string_view::npos : space - pos);
    const size_t eq = item.find('=');
    if (eq != std::string_view::npos) {
      kv[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    }
    if (space == std::string_view::npos) break;
    pos = space + 1;
  }
  std::string uri = "postgresql://" + (kv.count("user") ? kv["user"] + "@" : std::string()) + "/" +
                    (kv.count("dbname") ? kv["dbname"] : std::string("postgres"));
  char sep = '?';
  for (const char* name : {"host", "port"}) {
    if (kv.count(name)) {
      uri += sep + std::string(name) + "=" + kv[name];
      sep = '&';
    }
  }
  return uri;
}

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/flidem-XXXXXX";
  FL_ASSERT_MSG(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<std::unique_ptr<LocalStore>> RealDb::Open(uint32_t connections_max) const {
  OpenStoreOptions options;
  options.table = table;
  options.connections_max = connections_max;
  return OpenStore(uri, options);
}

Result<RealDb> MakeRealDb(std::string_view kind) {
  RealDb db;
  db.kind = std::string(kind);
  db.table = UniqueTableName();
  if (kind == "sqlite") {
    db.dir = std::make_shared<TempDir>();
    db.uri = "sqlite:" + db.dir->path() + "/idem.db?synchronous=normal";
  } else if (kind == "postgres") {
    FL_ASSIGN_OR_RETURN(const std::string conninfo, SharedPgConninfo());
    db.uri = PgUri(conninfo);
  } else {
    return InvalidArgumentError("unknown store kind " + std::string(kind));
  }
  // Creates the table before any race, so racing opens only find it.
  FL_RETURN_IF_ERROR(db.Open(1).status());
  return db;
}

Result<std::map<std::string, std::string>> DumpStore(LocalStore& store) {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store.Begin());
  std::map<std::string, std::string> out;
  std::string begin;
  for (;;) {
    FL_ASSIGN_OR_RETURN(std::vector<KeyValue> page, txn->Scan(begin, "", 1000));
    for (KeyValue& kv : page) out[kv.key] = kv.value;
    if (page.size() < 1000) break;
    begin = page.back().key + std::string(1, '\0');
  }
  txn->Rollback();
  return out;
}

Result<std::unique_ptr<Worker>> Worker::Spawn(const std::vector<std::string>& args) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return UnavailableError("pipe failed");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return UnavailableError("pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<std::string> argv_storage = {FAULTLINE_IDEMPOTENCY_WORKER};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  // The worker checks that this process is still its parent after PR_SET_PDEATHSIG.
  argv_storage.push_back("--parent=" + std::to_string(getpid()));
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    return UnavailableError(std::string("posix_spawn idempotency_worker: ") + std::strerror(rc));
  }
  std::unique_ptr<Worker> worker(new Worker());
  worker->pid_ = pid;
  worker->in_fd_ = in[1];
  worker->out_fd_ = out[0];
  return worker;
}

Worker::~Worker() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    kill(pid_, SIGCONT);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (in_fd_ >= 0) close(in_fd_);
  if (out_fd_ >= 0) close(out_fd_);
}

Result<std::string> Worker::ReadLine(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return DeadlineExceededError("worker wrote no line in time");
    pollfd pfd{out_fd_, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char chunk[512];
    const ssize_t n = read(out_fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return UnavailableError("worker closed its output (exited)");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Status Worker::WriteLine(std::string_view line) {
  std::string data(line);
  data.push_back('\n');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(in_fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return UnavailableError("cannot write to the worker");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

void Worker::CloseStdin() {
  if (in_fd_ >= 0) close(in_fd_);
  in_fd_ = -1;
}

void Worker::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

Result<int> Worker::Wait(int timeout_ms) {
  if (pid_ <= 0) return FailedPreconditionError("worker already reaped");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (r < 0 && errno != EINTR) return UnavailableError("waitpid failed");
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError("worker did not exit in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace faultline::testing
