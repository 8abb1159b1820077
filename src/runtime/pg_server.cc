// runtime::PgServer (faultline/runtime/pg_server.h).
#include "faultline/runtime/pg_server.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "faultline/runtime/child_process.h"

namespace faultline::runtime {
namespace {

namespace fs = std::filesystem;

using RunAs = ChildUser;

// initdb and postgres refuse to run as root: as root, run them as `postgres`.
Result<RunAs> ServerUser() {
  RunAs as;
  if (geteuid() != 0) return as;
  const passwd* pw = getpwnam("postgres");
  if (pw == nullptr) return FailedPreconditionError("running as root and no user 'postgres'");
  as.switch_user = true;
  as.uid = pw->pw_uid;
  as.gid = pw->pw_gid;
  return as;
}

Result<std::string> FindBindir() {
  if (const char* env = std::getenv("FAULTLINE_PG_BINDIR"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  std::string best;
  int best_version = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version && fs::exists(entry.path() / "bin" / "postgres")) {
      best_version = version;
      best = (entry.path() / "bin").string();
    }
  }
  if (best.empty()) {
    return FailedPreconditionError(
        "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install postgresql-15, "
        "or set FAULTLINE_PG_BINDIR)");
  }
  return best;
}

std::string LogTail(const std::string& path) { return FileTail(path); }

// fork + (as root: setgroups, setresgid, setresuid) + PDEATHSIG + exec, output to `log`.
Result<pid_t> Spawn(const RunAs& as, const std::vector<std::string>& argv, const std::string& log) {
  return SpawnChild(argv, log, as);
}

Status WaitExit(pid_t pid, const std::string& what, const std::string& log) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return UnavailableError(what + ": waitpid failed");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  return UnavailableError(what + " failed (status " + std::to_string(status) + "): " +
                          LogTail(log));
}

Status ChownTree(const RunAs& as, const std::string& path) {
  if (!as.switch_user) return Status::Ok();
  if (chown(path.c_str(), as.uid, as.gid) != 0) {
    return UnavailableError("cannot chown " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Result<std::string> MakeTempDir(const char* prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix +
                        "XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return UnavailableError("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  chmod(pattern.c_str(), 0755);
  return pattern;
}

// The template data directory, made once per machine (initdb is the slow part: 1-2 s).
Result<std::string> TemplateDir(const RunAs& as, const std::string& bindir) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string version = fs::path(bindir).parent_path().filename().string();
  const std::string final_dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                                "/faultline-pgtemplate-" + version + "-" +
                                std::to_string(getuid());
  if (fs::exists(final_dir + "/data/PG_VERSION")) return final_dir + "/data";
  FL_ASSIGN_OR_RETURN(const std::string work, MakeTempDir("faultline-pginit-"));
  FL_RETURN_IF_ERROR(ChownTree(as, work));
  const std::string log = work + "/initdb.log";
  FL_ASSIGN_OR_RETURN(const pid_t pid,
                      Spawn(as,
                            {bindir + "/initdb", "-D", work + "/data", "-U", "postgres", "-A",
                             "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"},
                            log));
  FL_RETURN_IF_ERROR(WaitExit(pid, "initdb", log));
  // Atomic publication: a concurrent process that lost the race keeps the winner's copy.
  if (rename(work.c_str(), final_dir.c_str()) != 0) {
    std::error_code ec;
    fs::remove_all(work, ec);
    if (!fs::exists(final_dir + "/data/PG_VERSION")) {
      return UnavailableError("cannot publish the PostgreSQL template at " + final_dir);
    }
  }
  return final_dir + "/data";
}

}  // namespace

Result<std::unique_ptr<PgServer>> PgServer::Start(PgServerOptions options) {
  std::unique_ptr<PgServer> server(new PgServer());
  server->options_ = std::move(options);
  FL_ASSIGN_OR_RETURN(server->bindir_, FindBindir());
  FL_ASSIGN_OR_RETURN(const RunAs as, ServerUser());
  FL_ASSIGN_OR_RETURN(const std::string templ, TemplateDir(as, server->bindir_));
  FL_ASSIGN_OR_RETURN(server->dir_, MakeTempDir("flpg-"));
  FL_RETURN_IF_ERROR(ChownTree(as, server->dir_));
  // cp -a keeps the owner and the 0700 mode postgres insists on.
  const std::string cp_log = server->dir_ + "/cp.log";
  FL_ASSIGN_OR_RETURN(const pid_t cp, Spawn(RunAs{}, {"/bin/cp", "-a", templ, server->dir_ + "/data"},
                                            cp_log));
  FL_RETURN_IF_ERROR(WaitExit(cp, "cp -a template", cp_log));
  const std::string port = std::to_string(server->options_.tcp_port != 0 ? server->options_.tcp_port
                                                                        : 5432);
  server->conninfo_ = "host=" + (server->options_.tcp_port != 0 ? "127.0.0.1" : server->dir_) +
                      " port=" + port + " user=postgres dbname=postgres";
  FL_RETURN_IF_ERROR(server->Launch());
  return server;
}

Status PgServer::Launch() {
  FL_ASSIGN_OR_RETURN(const RunAs as, ServerUser());
  std::vector<std::string> argv = {bindir_ + "/postgres",
                                   "-D", dir_ + "/data",
                                   "-k", dir_,
                                   "-p", std::to_string(options_.tcp_port != 0 ? options_.tcp_port : 5432),
                                   "-c", options_.tcp_port != 0 ? "listen_addresses=127.0.0.1" : "listen_addresses=",
                                   "-c", std::string("fsync=") + (options_.fsync ? "on" : "off"),
                                   "-c", "synchronous_commit=" + options_.synchronous_commit,
                                   "-c", "max_connections=100",
                                   "-c", "recovery_init_sync_method=syncfs"};  // crash restart: 4.5 s -> 0.4 s
  for (const std::string& setting : options_.settings) {
    argv.push_back("-c");
    argv.push_back(setting);
  }
  const std::string log = dir_ + "/postgres.log";
  FL_ASSIGN_OR_RETURN(pid_, Spawn(as, argv, log));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (PQping(conninfo_.c_str()) == PQPING_OK) return Status::Ok();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return UnavailableError("postgres exited at startup: " + LogTail(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill(SIGKILL).IgnoreError();
  return UnavailableError("postgres did not accept connections within 30 s: " + LogTail(log));
}

Status PgServer::Kill(int signal) {
  if (pid_ <= 0) return FailedPreconditionError("postgres is not running");
  SignalAndReap(pid_, signal);
  pid_ = -1;
  return Status::Ok();
}

Status PgServer::Restart() {
  if (pid_ > 0) return FailedPreconditionError("postgres is still running");
  return Launch();
}

PgServer::~PgServer() {
  // The data directory is discarded, so the shutdown checkpoint SIGINT would write (and fsync:
  // 3-4 s measured on a loaded machine) buys nothing: SIGQUIT stops it in milliseconds.
  if (pid_ > 0) Kill(SIGQUIT).IgnoreError();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

}  // namespace faultline::runtime
