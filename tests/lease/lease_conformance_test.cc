// The LeaseService conformance suite on PaxosLease (simulator) and EtcdLeaseService (a real etcd
// single node and a 3-member cluster, started by this test process; a missing etcd fails).
#include "tests/lease/lease_conformance.h"
#include "tests/lease/lease_worlds.h"

namespace faultline::lease_conformance {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Services, LeaseConformanceTest,
    ::testing::Values(LeaseConformanceParam{"PaxosLeaseSim", MakePaxosWorld},
                      LeaseConformanceParam{"EtcdSingleNode", [] { return MakeEtcdWorld(1); }},
                      LeaseConformanceParam{"EtcdThreeMembers", [] { return MakeEtcdWorld(3); }}),
    LeaseConformanceParamName);

}  // namespace
}  // namespace faultline::lease_conformance
