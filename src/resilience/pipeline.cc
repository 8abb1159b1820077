// Pipeline is a header-only template (faultline/resilience/pipeline.h); this file keeps the header
// compiled on its own in every build.
#include "faultline/resilience/pipeline.h"
