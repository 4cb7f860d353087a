#pragma once
// Stored form of the Transfer events; the rules are event_codec.hpp's.

#include "clearing/sagas/event_codec.hpp"
#include "clearing/sagas/transfer_decider.hpp"

namespace clearing::sagas {

using TransferCodec = EventCodec<TransferEvent>;
extern template struct EventCodec<TransferEvent>;  // in transfer_codec.cpp

}  // namespace clearing::sagas
