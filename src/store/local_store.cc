#include "faultline/store/local_store.h"

namespace faultline {

Status RunInTransaction(LocalStore& store, const std::function<Status(Transaction&)>& body,
                        uint32_t attempts_max) {
  FL_ASSERT(attempts_max > 0);
  Status last;
  for (uint32_t attempt = 0; attempt < attempts_max; ++attempt) {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store.Begin());
    last = body(*txn);
    if (last.ok()) last = txn->Commit();
    else txn->Rollback();
    if (last.code() != StatusCode::kAborted) return last;
  }
  return last;
}

}  // namespace faultline
