// The control channel between `faultline chaos` (the harness) and `faultline node` (one process
// hosting one scenario node), and the observation file a node process writes.
//
// The harness is a transport peer of every node (id kHarnessId, marked never_blocked, so no drop
// rule ever cuts it off). Control messages travel in the same CRC-checked frames as node traffic,
// with reserved message types in [kCtlFirst, kCtlLast]; a node process hands them to its control
// code and every other type to the node. Node code never sees a control frame.
//
// Every state-setting message carries the harness's state for that node in full (absolute, not a
// delta), with a sequence number per kind: a node applies a message only when its seq is above the
// last one it applied of that kind, and acknowledges it either way. The harness resends until the
// acknowledgement arrives (a paused node acknowledges when it resumes; a restarted node starts from
// seq 0 and so applies the latest state again).
//
//   harness -> node   kCtlPing            u64 nonce                          -> kCtlPong u64 nonce
//                     kCtlClientOp        u64 op, u8 write, u32 key, u64 value -> kCtlClientReply
//                     kCtlRules           u64 seq, u32 n, n x (u32 peer, u8 Direction)
//                     kCtlClock           u64 seq, i64 drift_ppm, i64 wall_offset_ns
//                     kCtlHold            u64 seq, u32 n, n x u32 peer (held; others released)
//   node -> harness   kCtlAck             u16 kind, u64 seq
//                     kCtlClientReply     u64 op, u8 outcome, u8 has_value, u64 value
//                     kCtlActing          i64 t_ns, u8 acting, i64 until_ns (-1: no bound)
//
// Times are TrueTime: CLOCK_MONOTONIC minus the run's start instant, which the harness passes to
// every node process (--t0); one machine, so every process reads the same clock.
//
// Observation file (DATA/obs.jsonl, appended across restarts, one JSON object per line, written
// with one write(2) per line so a SIGKILL loses at most the line being written):
//   {"k":"acting","n":N,"t":T,"on":0|1,"until":U}     the node's acting state changed, or the
//        bound of its acting interval did; U = -1: no bound (the naive design), else the instant its
//        lease stops it acting (self-fencing deadline mapped to TrueTime).
//   {"k":"store","t":T,"load":0|1,"acc":0|1,"token":K,"node":N,"key":K,"value":V,"seq":S}
// selftest nodes write nothing: the harness records their increments and final reads itself.
#pragma once

#include <cstdint>

namespace faultline::app::chaos {

inline constexpr uint32_t kHarnessId = 100;

inline constexpr uint16_t kCtlFirst = 0xFE00;
inline constexpr uint16_t kCtlPing = 0xFE00;
inline constexpr uint16_t kCtlPong = 0xFE01;
inline constexpr uint16_t kCtlClientOp = 0xFE02;
inline constexpr uint16_t kCtlClientReply = 0xFE03;
inline constexpr uint16_t kCtlRules = 0xFE04;
inline constexpr uint16_t kCtlClock = 0xFE05;
inline constexpr uint16_t kCtlHold = 0xFE06;
inline constexpr uint16_t kCtlAck = 0xFE07;
inline constexpr uint16_t kCtlActing = 0xFE08;
inline constexpr uint16_t kCtlLast = 0xFE0F;
inline constexpr uint16_t kCtlSchema = 1;

inline bool IsControlType(uint16_t type) { return type >= kCtlFirst && type <= kCtlLast; }

}  // namespace faultline::app::chaos
