#pragma once
// The rows of the decider tests' validation tables: a valid command with one change, and
// the ISO 20022 reason code and the reason the decider must give for it (a Transfer is
// rejected with them, an IncomingPayment parked).

#include <string>

namespace sagas_tests {

template <class Command>
struct InvalidCommandCase {
  std::string name;
  void (*mutate)(Command&);
  std::string code;
  std::string reason;

  // `valid` with this row's change.
  Command applied_to(Command valid) const {
    mutate(valid);
    return valid;
  }
};

}  // namespace sagas_tests
