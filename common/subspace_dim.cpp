#include "common/subspace_dim.h"

#include <cctype>
#include <limits>

namespace dwarp {
namespace {

constexpr char kExpected[] = "expected 0 (linear readout), a positive integer (subspace dimension) or `full`";

}  // namespace

StatusOr<SubspaceDim> SubspaceDim::FromInt(int64_t d) {
  if (d < 0) return InvalidArgumentError("d = " + std::to_string(d) + "; " + kExpected);
  return d == 0 ? Linear() : Subspace(d);
}

StatusOr<SubspaceDim> SubspaceDim::Parse(std::string_view text) {
  if (text == "full") return Full();
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text.empty()) return InvalidArgumentError("d = \"\"; " + std::string(kExpected));
  int64_t value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      std::string message = "d = " + quoted + "; " + kExpected;
      // A word (a misspelt "full", "Full") gets a hint; a number with a sign or an exponent does not.
      if (std::isalpha(static_cast<unsigned char>(text[0]))) message += " (did you mean `full`?)";
      return InvalidArgumentError(message);
    }
    const int digit = c - '0';
    if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) {
      return InvalidArgumentError("d = " + quoted + " is too large; " + kExpected);
    }
    value = value * 10 + digit;
  }
  return FromInt(value);
}

std::string SubspaceDim::ToString() const {
  switch (kind) {
    case kLinear: return "0";
    case kSubspace: return std::to_string(value);
    case kFull: return "full";
  }
  return "?";
}

}  // namespace dwarp
