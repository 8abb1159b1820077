#include "faultline/resilience/retry_after.h"

#include "faultline/core/options.h"
#include "faultline/resilience/backoff.h"

namespace faultline {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr std::string_view kShortDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::string_view kLongDays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};
constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool IsOws(char c) { return c == ' ' || c == '\t'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// The year of a day count (inverse of DaysFromCivil, year only).
int64_t YearFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  return yoe + era * 400 + (m <= 2 ? 1 : 0);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int64_t DaysInMonth(int64_t y, int64_t m) {
  constexpr int64_t kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// A forward-only reader over the header value. Every method returns false on a mismatch and
// leaves the reader in an unspecified position; parsers bail out on the first false.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return s_.empty(); }
  bool Literal(std::string_view lit) {
    if (s_.substr(0, lit.size()) != lit) return false;
    s_.remove_prefix(lit.size());
    return true;
  }
  // Exactly n digits.
  bool Digits(size_t n, int64_t* out) {
    if (s_.size() < n) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!IsDigit(s_[i])) return false;
      v = v * 10 + (s_[i] - '0');
    }
    s_.remove_prefix(n);
    *out = v;
    return true;
  }
  // One of `names`; *index is its position.
  template <size_t N>
  bool OneOf(const std::string_view (&names)[N], int64_t* index) {
    for (size_t i = 0; i < N; ++i) {
      if (Literal(names[i])) {
        *index = static_cast<int64_t>(i);
        return true;
      }
    }
    return false;
  }
  // hh:mm:ss.
  bool TimeOfDay(int64_t* h, int64_t* m, int64_t* s) {
    return Digits(2, h) && Literal(":") && Digits(2, m) && Literal(":") && Digits(2, s);
  }
  std::string_view rest() const { return s_; }

 private:
  std::string_view s_;
};

struct CivilTime {
  int64_t year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

std::optional<WallTime> ToWallTime(const CivilTime& t) {
  if (t.month < 1 || t.month > 12) return std::nullopt;
  if (t.day < 1 || t.day > DaysInMonth(t.year, t.month)) return std::nullopt;
  if (t.hour > 23 || t.minute > 59 || t.second > 60) return std::nullopt;  // 60: leap second
  const int64_t days = DaysFromCivil(t.year, t.month, t.day);
  const int64_t seconds = days * 86400 + t.hour * 3600 + t.minute * 60 + t.second;  // |.| < 2^39
  return WallTime::FromNanos(time_internal::SatMul(seconds, kNanosPerSecond));
}

// "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<WallTime> ParseImfFixdate(std::string_view v) {
  Cursor c(v);
  CivilTime t;
  int64_t weekday = 0;
  if (!(c.OneOf(kShortDays, &weekday) && c.Literal(", ") && c.Digits(2, &t.day) && c.Literal(" ") &&
        c.OneOf(kMonths, &t.month) && c.Literal(" ") && c.Digits(4, &t.year) && c.Literal(" ") &&
        c.TimeOfDay(&t.hour, &t.minute, &t.second) && c.Literal(" GMT") && c.done())) {
    return std::nullopt;
  }
  t.month += 1;
  return ToWallTime(t);
}

// "Sunday, 06-Nov-94 08:49:37 GMT"
std::optional<WallTime> ParseRfc850(std::string_view v, WallTime now) {
  Cursor c(v);
  CivilTime t;
  int64_t weekday = 0;
  int64_t yy = 0;
  if (!(c.OneOf(kLongDays, &weekday) && c.Literal(", ") && c.Digits(2, &t.day) && c.Literal("-") &&
        c.OneOf(kMonths, &t.month) && c.Literal("-") && c.Digits(2, &yy) && c.Literal(" ") &&
        c.TimeOfDay(&t.hour, &t.minute, &t.second) && c.Literal(" GMT") && c.done())) {
    return std::nullopt;
  }
  t.month += 1;
  // RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past century.
  int64_t now_days = now.nanos() / kNanosPerSecond / 86400;
  if (now.nanos() < 0 && now.nanos() % (kNanosPerSecond * 86400) != 0) --now_days;
  const int64_t now_year = YearFromDays(now_days);
  const int64_t century = now_year - ((now_year % 100) + 100) % 100;
  t.year = century + yy;
  if (t.year > now_year + 50) t.year -= 100;
  return ToWallTime(t);
}

// "Sun Nov  6 08:49:37 1994"
std::optional<WallTime> ParseAsctime(std::string_view v) {
  Cursor c(v);
  CivilTime t;
  int64_t weekday = 0;
  if (!(c.OneOf(kShortDays, &weekday) && c.Literal(" ") && c.OneOf(kMonths, &t.month) &&
        c.Literal(" "))) {
    return std::nullopt;
  }
  // Day of month: two digits, or a space and one digit.
  if (!(c.Literal(" ") ? c.Digits(1, &t.day) : c.Digits(2, &t.day))) return std::nullopt;
  if (!(c.Literal(" ") && c.TimeOfDay(&t.hour, &t.minute, &t.second) && c.Literal(" ") &&
        c.Digits(4, &t.year) && c.done())) {
    return std::nullopt;
  }
  t.month += 1;
  return ToWallTime(t);
}

std::optional<WallTime> ParseHttpDateTrimmed(std::string_view v, WallTime now, bool obsolete) {
  if (auto t = ParseImfFixdate(v)) return t;
  if (!obsolete) return std::nullopt;
  if (auto t = ParseRfc850(v, now)) return t;
  return ParseAsctime(v);
}

std::optional<Duration> ParseDelaySecondsTrimmed(std::string_view v) {
  size_t i = 0;
  int64_t seconds = 0;
  bool saturated = false;
  while (i < v.size() && IsDigit(v[i])) {
    const int64_t digit = v[i] - '0';
    if (seconds > (INT64_MAX / kNanosPerSecond - digit) / 10) saturated = true;
    if (!saturated) seconds = seconds * 10 + digit;
    ++i;
  }
  if (i == 0) return std::nullopt;  // no integer part ("", ".5", "-1", "abc")
  bool round_up = false;
  if (i < v.size() && v[i] == '.') {
    ++i;
    const size_t fraction_start = i;
    while (i < v.size() && IsDigit(v[i])) {
      if (v[i] != '0') round_up = true;
      ++i;
    }
    if (i == fraction_start) return std::nullopt;  // "1."
  }
  if (i != v.size()) return std::nullopt;  // trailing garbage
  if (saturated) return Duration::Infinite();
  if (round_up) ++seconds;  // seconds <= INT64_MAX / 1e9: no overflow
  return Duration::Seconds(seconds);
}

// Whole seconds from now until `at`, rounded up; 0 when `at` is not in the future.
Duration SecondsUntil(WallTime at, WallTime now) {
  const Duration d = at - now;
  if (d <= Duration::Zero()) return Duration::Zero();
  const int64_t ns = d.nanos();
  const int64_t seconds = ns / kNanosPerSecond + (ns % kNanosPerSecond != 0 ? 1 : 0);
  return Duration::Seconds(seconds);
}

}  // namespace

std::optional<Duration> ParseDelaySeconds(std::string_view value) {
  return ParseDelaySecondsTrimmed(TrimOws(value));
}

std::optional<WallTime> ParseHttpDate(std::string_view value, WallTime now) {
  return ParseHttpDateTrimmed(TrimOws(value), now, /*obsolete=*/true);
}

Pushback ParseGrpcPushbackMs(std::string_view value) {
  const std::string_view v = TrimOws(value);
  if (v.empty()) return Pushback::Stop();
  int64_t ms = 0;
  for (char ch : v) {
    if (!IsDigit(ch)) return Pushback::Stop();  // negative or unparseable: "do not retry" (A6)
    const int64_t digit = ch - '0';
    ms = ms > (INT64_MAX - digit) / 10 ? INT64_MAX : ms * 10 + digit;
  }
  return Pushback::Delay(Duration::Millis(ms));  // saturating
}

Status RetryAfterOptions::Validate() const {
  FL_CHECK_OPTION(delay_max > Duration::Zero(), "delay_max must be > 0");
  // 1.5 × delay_max must not saturate the jitter range.
  FL_CHECK_OPTION(delay_max <= Duration::Nanos(INT64_MAX / 2), "delay_max must be <= INT64_MAX/2 ns");
  return Status::Ok();
}

Result<RetryAfterParser> RetryAfterParser::Create(const RetryAfterOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return RetryAfterParser(options);
}

Pushback RetryAfterParser::Parse(std::string_view value, WallTime now, uint64_t random_bits) const {
  const std::string_view v = TrimOws(value);
  if (v.empty()) return Pushback::None();
  std::optional<Duration> delay;
  if (IsDigit(v.front())) {
    delay = ParseDelaySecondsTrimmed(v);
  } else if (auto at = ParseHttpDateTrimmed(v, now, options_.obsolete_dates)) {
    delay = SecondsUntil(*at, now);
  }
  if (!delay) return Pushback::None();
  Duration d = *delay < options_.delay_max ? *delay : options_.delay_max;
  FL_ASSERT(d >= Duration::Zero());
  if (options_.jitter) d = UniformDuration(d, d + d / 2, random_bits);
  return Pushback::Delay(d);
}

}  // namespace faultline
