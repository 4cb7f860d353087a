#pragma once
// The one Asio include: everything that needs Asio includes this, never Boost directly,
// so the configuration (coroutines, no deprecated APIs) is the same in every unit.
// Heavy: keep it out of widely included headers.

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <utility>

namespace clearing {
namespace asio = boost::asio;
}  // namespace clearing
