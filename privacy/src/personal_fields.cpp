#include "clearing/privacy/personal_fields.hpp"

#include <array>
#include <nlohmann/json.hpp>
#include <string_view>

namespace clearing::privacy {
namespace {

constexpr std::array<std::string_view, 5> kFlatFields = {
    "remittance_info", "debtor_name", "debtor_account", "creditor_name", "creditor_account"};

bool is_flat_field(std::string_view key) {
  for (auto field : kFlatFields)
    if (key == field) return true;
  return false;
}

void visit_string(nlohmann::json& value, const std::function<void(std::string&)>& visit) {
  if (value.is_string()) visit(value.get_ref<std::string&>());
}

void visit_party(nlohmann::json& party, const std::function<void(std::string&)>& visit) {
  if (auto name = party.find("name"); name != party.end()) visit_string(*name, visit);
  auto account = party.find("account");
  if (account == party.end()) return;
  if (account->is_string()) {
    visit_string(*account, visit);
  } else if (account->is_object()) {
    if (auto id = account->find("id"); id != account->end()) visit_string(*id, visit);
  }
}

void walk(nlohmann::json& node, const std::function<void(std::string&)>& visit) {
  if (node.is_array()) {
    for (auto& element : node) walk(element, visit);
    return;
  }
  if (!node.is_object()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string_view key = it.key();
    if (is_flat_field(key)) {
      visit_string(it.value(), visit);
    } else if ((key == "debtor" || key == "creditor") && it.value().is_object()) {
      visit_party(it.value(), visit);
    } else {
      walk(it.value(), visit);
    }
  }
}

const std::string* string_at(const nlohmann::json& node, std::string_view key) {
  if (!node.is_object()) return nullptr;
  auto it = node.find(key);
  if (it == node.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

}  // namespace

void for_each_personal_field(nlohmann::json& document,
                             const std::function<void(std::string&)>& visit) {
  walk(document, visit);
}

std::optional<std::string> find_subject(const nlohmann::json& document) {
  if (const auto* account_id = string_at(document, "account_id");
      account_id && !account_id->empty())
    return *account_id;
  if (document.is_object()) {
    if (auto creditor = document.find("creditor"); creditor != document.end()) {
      if (creditor->is_object()) {
        auto account = creditor->find("account");
        if (account != creditor->end()) {
          if (account->is_string() && !account->get_ref<const std::string&>().empty())
            return account->get<std::string>();
          if (const auto* id = string_at(*account, "id"); id && !id->empty()) return *id;
        }
      }
    }
  }
  if (const auto* account = string_at(document, "creditor_account"); account && !account->empty())
    return *account;
  return std::nullopt;
}

}  // namespace clearing::privacy
