#include "faultline/runtime/etcd_cluster.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "faultline/core/assert.h"
#include "faultline/core/options.h"
#include "faultline/runtime/child_process.h"

namespace faultline::runtime {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

void EnsureCurl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t AppendBody(char* data, size_t size, size_t count, void* out) {
  std::string* body = static_cast<std::string*>(out);
  if (body->size() > (1u << 20)) return 0;
  body->append(data, size * count);
  return size * count;
}

// One blocking HTTP request on loopback (GET when body is empty). The body of any answer.
Result<std::string> HttpCall(const std::string& url, const std::string& body, long timeout_ms) {
  EnsureCurl();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return UnavailableError("curl_easy_init failed");
  std::string reply;
  curl_slist* headers = nullptr;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  if (!body.empty()) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  const CURLcode rc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return UnavailableError(url + ": " + curl_easy_strerror(rc));
  if (code != 200) return UnavailableError(url + ": HTTP " + std::to_string(code));
  return reply;
}

Result<uint16_t> FreePort(std::set<uint16_t>& taken) {
  for (int attempt = 0; attempt < 32; ++attempt) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close(fd);
      return UnavailableError(std::string("bind 127.0.0.1:0: ") + std::strerror(errno));
    }
    close(fd);
    const uint16_t port = ntohs(addr.sin_port);
    if (taken.insert(port).second) return port;
  }
  return UnavailableError("no free loopback port");
}

Result<std::string> MakeTempDir(const std::string& base) {
  std::string parent = base;
  if (parent.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::string pattern = parent + "/fletcd-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return UnavailableError("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  return pattern;
}

// fork + PR_SET_PDEATHSIG(SIGKILL) [+ setresgid/setresuid] + exec, output appended to `log`.
Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log, uint32_t uid) {
  ChildUser user;
  user.switch_user = uid != 0;
  user.uid = uid;
  user.gid = uid;
  return SpawnChild(argv, log, user);
}

std::string Ms(Duration d) { return std::to_string(d.nanos() / 1'000'000); }

}  // namespace

Status EtcdClusterOptions::Validate() const {
  FL_CHECK_OPTION(members >= 1, "members must be >= 1");
  FL_CHECK_OPTION(members <= EtcdClusterLimits::kMembersMax, "members must be <= 7");
  FL_CHECK_OPTION(heartbeat_interval >= EtcdClusterLimits::kHeartbeatMin,
                  "heartbeat_interval must be >= 10 ms");
  FL_CHECK_OPTION(heartbeat_interval <= EtcdClusterLimits::kHeartbeatMax,
                  "heartbeat_interval must be <= 5 s");
  FL_CHECK_OPTION(election_timeout >= heartbeat_interval * 5,
                  "election_timeout must be >= 5 x heartbeat_interval");
  FL_CHECK_OPTION(election_timeout <= Duration::Seconds(50), "election_timeout must be <= 50 s");
  FL_CHECK_OPTION(start_timeout > Duration::Zero(), "start_timeout must be > 0");
  FL_CHECK_OPTION(start_timeout <= EtcdClusterLimits::kStartTimeoutMax,
                  "start_timeout must be <= 300 s");
  FL_CHECK_OPTION(uids.empty() || uids.size() == members,
                  "uids must be empty or hold one uid per member");
  return Status::Ok();
}

Result<std::string> FindEtcdBinary(const std::string& configured) {
  if (!configured.empty()) {
    if (access(configured.c_str(), X_OK) == 0) return configured;
    return FailedPreconditionError("etcd binary " + configured + " is not an executable");
  }
  if (const char* env = std::getenv("FAULTLINE_ETCD"); env != nullptr && *env != '\0') {
    if (access(env, X_OK) == 0) return std::string(env);
    return FailedPreconditionError(std::string("FAULTLINE_ETCD=") + env + " is not an executable");
  }
  for (const char* path : {"/usr/bin/etcd", "/usr/local/bin/etcd", "/usr/sbin/etcd"}) {
    if (access(path, X_OK) == 0) return std::string(path);
  }
  return FailedPreconditionError(
      "no etcd binary (install the Debian package etcd-server, or set FAULTLINE_ETCD)");
}

EtcdCluster::EtcdCluster(EtcdClusterOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(EtcdClusterOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_ASSIGN_OR_RETURN(options.binary, FindEtcdBinary(options.binary));
  std::unique_ptr<EtcdCluster> cluster(new EtcdCluster(std::move(options)));
  FL_ASSIGN_OR_RETURN(cluster->dir_, MakeTempDir(cluster->options_.base_dir));
  const bool any_uid = !cluster->options_.uids.empty();
  if (any_uid) chmod(cluster->dir_.c_str(), 0755);  // members running as other uids enter it
  std::set<uint16_t> taken;
  for (size_t i = 0; i < cluster->options_.members; ++i) {
    Member m;
    m.name = "m" + std::to_string(i);
    FL_ASSIGN_OR_RETURN(m.client_port, FreePort(taken));
    FL_ASSIGN_OR_RETURN(m.peer_port, FreePort(taken));
    m.uid = any_uid ? cluster->options_.uids[i] : 0;
    cluster->members_.push_back(m);
    const std::string data = cluster->data_dir(i);
    std::error_code ec;
    fs::create_directories(data, ec);
    if (ec) return UnavailableError("mkdir " + data + ": " + ec.message());
    chmod(data.c_str(), 0700);
    if (m.uid != 0 && chown(data.c_str(), m.uid, m.uid) != 0) {
      return UnavailableError("chown " + data + ": " + std::strerror(errno));
    }
  }
  // Launch all first (a member of a new cluster waits for its peers), then wait for each.
  for (size_t i = 0; i < cluster->size(); ++i) {
    FL_RETURN_IF_ERROR(cluster->Launch(i, /*existing=*/false));
  }
  for (size_t i = 0; i < cluster->size(); ++i) {
    FL_RETURN_IF_ERROR(cluster->WaitHealthy(i, cluster->options_.start_timeout));
  }
  return cluster;
}

std::string EtcdCluster::InitialCluster() const {
  std::string out;
  for (const Member& m : members_) {
    if (!out.empty()) out += ",";
    out += m.name + "=http://127.0.0.1:" + std::to_string(m.peer_port);
  }
  return out;
}

Status EtcdCluster::Launch(size_t i, bool existing) {
  Member& m = members_[i];
  const std::string client = "http://127.0.0.1:" + std::to_string(m.client_port);
  const std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
  const std::vector<std::string> argv = {
      options_.binary, "--name", m.name, "--data-dir", data_dir(i),
      "--listen-client-urls", client, "--advertise-client-urls", client,
      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
      "--initial-cluster", InitialCluster(),
      "--initial-cluster-state", existing ? "existing" : "new",
      "--initial-cluster-token", fs::path(dir_).filename().string(),
      "--heartbeat-interval", Ms(options_.heartbeat_interval),
      "--election-timeout", Ms(options_.election_timeout),
      "--logger", "zap", "--log-outputs", "stderr"};
  FL_ASSIGN_OR_RETURN(m.pid, Spawn(argv, log_path(i), m.uid));
  m.paused = false;
  return Status::Ok();
}

Status EtcdCluster::WaitHealthy(size_t i, Duration timeout) const {
  FL_ASSERT(i < size());
  const Member& m = members_[i];
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout.nanos());
  std::string last = "no answer";
  while (std::chrono::steady_clock::now() < deadline) {
    if (m.pid <= 0) return FailedPreconditionError(m.name + " is not running");
    Result<std::string> body = HttpCall(endpoint(i) + "/health", "", 500);
    if (body.ok()) {
      if (body->find("\"health\":\"true\"") != std::string::npos) return Status::Ok();
      last = *body;
    } else {
      last = std::string(body.status().message());
    }
    int status = 0;
    if (waitpid(m.pid, &status, WNOHANG) == m.pid) {
      const_cast<Member&>(m).pid = -1;
      return UnavailableError("etcd member " + m.name + " exited at startup (status " +
                              std::to_string(status) + "): " + LogTail(i));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return UnavailableError("etcd member " + m.name + " was not healthy in time (" + last +
                          "): " + LogTail(i));
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < size(); ++i) out.push_back(endpoint(i));
  return out;
}

std::string EtcdCluster::endpoint(size_t i) const {
  return "http://127.0.0.1:" + std::to_string(client_port(i));
}
uint16_t EtcdCluster::client_port(size_t i) const {
  FL_ASSERT(i < size());
  return members_[i].client_port;
}
uint16_t EtcdCluster::peer_port(size_t i) const {
  FL_ASSERT(i < size());
  return members_[i].peer_port;
}
pid_t EtcdCluster::pid(size_t i) const {
  FL_ASSERT(i < size());
  return members_[i].pid;
}
uint32_t EtcdCluster::uid(size_t i) const {
  FL_ASSERT(i < size());
  return members_[i].uid;
}
bool EtcdCluster::paused(size_t i) const {
  FL_ASSERT(i < size());
  return members_[i].paused;
}
std::string EtcdCluster::data_dir(size_t i) const {
  FL_ASSERT(i < size());
  return dir_ + "/" + members_[i].name;
}
std::string EtcdCluster::log_path(size_t i) const {
  FL_ASSERT(i < size());
  return dir_ + "/" + members_[i].name + ".log";
}

std::string EtcdCluster::LogTail(size_t i, size_t lines) const {
  return FileTail(log_path(i), lines);
}

Status EtcdCluster::Kill(size_t i) {
  FL_ASSERT(i < size());
  Member& m = members_[i];
  if (m.pid <= 0) return FailedPreconditionError(m.name + " is not running");
  kill(m.pid, SIGKILL);
  int status = 0;
  while (waitpid(m.pid, &status, 0) < 0 && errno == EINTR) {
  }
  m.pid = -1;
  m.paused = false;
  return Status::Ok();
}

Status EtcdCluster::Restart(size_t i) {
  FL_ASSERT(i < size());
  if (members_[i].pid > 0) return FailedPreconditionError(members_[i].name + " is still running");
  FL_RETURN_IF_ERROR(Launch(i, /*existing=*/true));
  return WaitHealthy(i, options_.start_timeout);
}

Status EtcdCluster::Pause(size_t i) {
  FL_ASSERT(i < size());
  Member& m = members_[i];
  if (m.pid <= 0) return FailedPreconditionError(m.name + " is not running");
  if (kill(m.pid, SIGSTOP) != 0) return UnavailableError(std::string("SIGSTOP: ") + std::strerror(errno));
  m.paused = true;
  return Status::Ok();
}

Status EtcdCluster::Resume(size_t i) {
  FL_ASSERT(i < size());
  Member& m = members_[i];
  if (m.pid <= 0) return FailedPreconditionError(m.name + " is not running");
  if (kill(m.pid, SIGCONT) != 0) return UnavailableError(std::string("SIGCONT: ") + std::strerror(errno));
  m.paused = false;
  return Status::Ok();
}

Result<size_t> EtcdCluster::LeaderIndex() const {
  std::string last = "no running member";
  for (size_t i = 0; i < size(); ++i) {
    if (members_[i].pid <= 0 || members_[i].paused) continue;
    Result<std::string> body = HttpCall(endpoint(i) + "/v3/maintenance/status", "{}", 1000);
    if (!body.ok()) {
      last = std::string(body.status().message());
      continue;
    }
    const Json reply = Json::parse(*body, nullptr, /*allow_exceptions=*/false);
    if (!reply.is_object() || !reply.contains("header") || !reply["header"].is_object() ||
        !reply["header"].contains("member_id") || !reply.contains("leader")) {
      last = members_[i].name + " answered malformed status: " + body->substr(0, 200);
      continue;
    }
    const Json& self = reply["header"]["member_id"];
    const Json& leader = reply["leader"];
    if (self == leader) return i;
  }
  return UnavailableError("no etcd member reports itself as the raft leader (" + last + ")");
}

EtcdCluster::~EtcdCluster() {
  for (size_t i = 0; i < size(); ++i) {
    if (members_[i].pid > 0) {
      if (members_[i].paused) kill(members_[i].pid, SIGCONT);
      Kill(i).IgnoreError();
    }
  }
  if (!dir_.empty() && !options_.keep_dir) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

}  // namespace faultline::runtime
