#pragma once
// Stand-in for clearing/base/asio.hpp, which does not compile at the moment:
// `namespace clearing::asio = boost::asio;` is not valid C++ (a namespace alias cannot have
// a qualified name). Same includes and configuration; replace this include with
// "clearing/base/asio.hpp" once base/ declares `namespace clearing { namespace asio = ...; }`.

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <utility>

namespace clearing {
namespace asio = boost::asio;
}  // namespace clearing
