// File: faultline/sim/history.h
//
// The simulator records client operations into the checker's history types, defined in
// faultline/check/history.h (see there for the format and contracts). This header re-exports them
// in namespace sim so that scenario code can keep writing sim::History.
#pragma once

// Node code (files compiled with FAULTLINE_NODE_CODE) runs on the real runtime too: it may not see
// the simulator.
#ifdef FAULTLINE_NODE_CODE
#error "node code must not include faultline/sim/ headers"
#endif

#include "faultline/check/history.h"

namespace faultline::sim {

using check::History;
using check::HistoryOp;
using check::JsonString;
using check::OpType;
using check::OpTypeName;

}  // namespace faultline::sim
